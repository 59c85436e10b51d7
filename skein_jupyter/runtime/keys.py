"""Keys of the Skein key-value store that the runtime and the client share.

Notebook servers:

``jupyter.notebook.info``
    JSON ``{"protocol", "host", "port", "base_url", "token"}``, published once
    the server answers requests; the key and format of skein's own Jupyter
    recipe, so ``skein kv get APP_ID --key jupyter.notebook.info --wait`` works.
    With TLS it also has ``"tls_fingerprint"``: the SHA-256 of the server's
    certificate, ``AB:CD:...`` as ``openssl x509 -fingerprint -sha256`` prints it.
``skein-jupyter.notebook.certificate``
    The server's TLS certificate (PEM), set at start when it serves HTTPS.
``skein-jupyter.notebook.status``
    JSON ``{"started", "last_activity", "connections", "kernels", "busy_kernels",
    "terminals", "idle_seconds", "frontend"}``, refreshed every few seconds while
    the server runs: ``connections`` counts the clients (browser tabs, API
    clients) connected to kernels; ``idle_seconds`` is 0 while a kernel is busy
    or a client is connected.
``skein-jupyter.notebook.warning``
    JSON ``{"reason", "stops_at", "message"}``, set when the server will stop
    itself soon: ``reason`` is ``idle`` (the idle timeout; removed as soon as
    the server is used again) or ``lifetime`` (the maximum lifetime),
    ``stops_at`` the time of the stop in seconds since the epoch, ``message``
    the why in words (e.g. ``idle since 13:05 UTC (idle timeout 1h)``).
    Published a lead time before the stop: a quarter of the timeout, at most
    5 minutes, at least 30 seconds (all along for a shorter timeout).
``skein-jupyter.notebook.frontend``
    The frontend the server runs (``lab``, ``notebook`` or ``server``), set at start.
``skein-jupyter.notebook.workspace``
    The HDFS path of the server's workspace, set at start before it is restored.
``skein-jupyter.notebook.stop``
    Set by ``notebook stop``: the server shuts down cleanly and the
    application ends SUCCEEDED.

Papermill runs and sweeps (a run is a sweep of one set, set 0):

``skein-jupyter.run.sets``
    How many parameter sets the application runs (a decimal number), set by
    every worker as it starts; the client reads it (it never reads the job back).
``skein-jupyter.run.output``
    The output directory on the cluster filesystem, placeholders expanded.
``skein-jupyter.run.progress.<set>``
    JSON ``{"set", "cells", "done", "cell", "source", "attempt", "started"}``:
    cells in the notebook, cells done, the running cell's index and first line.
``skein-jupyter.run.result.<set>``
    JSON ``{"set", "parameters", "status", "cell", "execution_count", "ename",
    "evalue", "duration", "attempt", "output", "html", "host"}``; ``status`` is
    ``succeeded``, ``failed``, ``timed_out``, ``stopped`` or ``cancelled`` (its
    container was lost and the run stopped; sets never started have no result
    here and are ``cancelled`` in the summary).
``skein-jupyter.run.next``
    The first set no worker has claimed yet (a decimal number): a worker claims
    a set by moving it on by one. Moved to the end by a stop.
``skein-jupyter.run.claim.<set>``
    The Skein container running the set; owned by it, so it goes when the
    container does and another container takes the set over. Dropped with
    the set's result.
``skein-jupyter.run.started.<set>``
    The set runs (or ran in a container that is gone); dropped when its result
    is recorded. A set started but claimed by no one is taken over.
``skein-jupyter.run.attempts.<set>``
    How many times the set has started (restarts after a lost container, retries).
``skein-jupyter.run.finalize``
    Taken by the one worker that writes the summary and ends the application,
    once ``run.next`` is at the end and no set is started without a result.
``skein-jupyter.run.summary``
    JSON ``{"status", "sets", "counts", "duration", "output", "table"}``, set once
    every set has a result, just before the application ends.
``skein-jupyter.run.stop``
    Set by ``skein-jupyter kill``: running sets stop and save their output,
    pending sets are cancelled, and the application ends KILLED.

Flows (one coordinator container, ``flow``, and one service per step, ``step-<name>``;
the flow's output directory is ``run.output``, its summary ``run.summary``, and ``run.stop``
stops the whole flow, as for runs):

``skein-jupyter.flow.state``
    JSON ``{step: {"status", "attempts", "started", "finished", "duration", "output",
    "html", "cell", "ename", "evalue", "retry_at"}}``, every step in the recipe's order,
    rewritten by the coordinator whenever a step changes. ``status`` is ``pending``,
    ``running``, ``retrying`` (waiting for its retry interval), ``succeeded``, ``failed``,
    ``timed_out``, ``stopped`` (stopped while it ran: by ``kill``, or because another step
    failed with ``on_failure: stop``), ``skipped`` (a step it depends on failed) or
    ``cancelled`` (never started: the flow stopped first).
``skein-jupyter.flow.attempt.<step>``
    The attempt the step's container runs (a decimal number from 1), set by the
    coordinator before it starts the container.
``skein-jupyter.flow.inputs.<step>``
    JSON ``{parameter: value}``: the values of the step's ``inputs``, taken from what
    upstream steps recorded, set by the coordinator before it starts the container.
``skein-jupyter.flow.progress.<step>``
    JSON as ``run.progress.<set>``, for the step's running attempt.
``skein-jupyter.flow.result.<step>``
    JSON as ``run.result.<set>`` plus ``"step"`` and ``"values"`` (what the notebook
    recorded, a JSON object), set by the step's container when its attempt ends.
``skein-jupyter.flow.stop.<step>``
    Set by the coordinator to stop one running step (another step failed with
    ``on_failure: stop``); the step saves its partial output.

Kernels (``kind: kernel``, started by the kernel provisioner, ``skein_jupyter/provisioner.py``):

``skein-jupyter.kernel.connection``
    JSON connection info of the kernel, as in a Jupyter connection file
    (``{"transport", "ip", "shell_port", "iopub_port", "stdin_port", "control_port",
    "hb_port", "key", "signature_scheme", "kernel_name"}``), set by the container once
    ipykernel listens. It holds the kernel's HMAC key: the store is the owner's only.
``skein-jupyter.kernel.heartbeat``
    Rewritten by the provisioner every ``lease / 6`` seconds (a counter); the container
    ends the application (KILLED) when it has not changed for ``lease`` seconds.
``skein-jupyter.kernel.signal``
    A signal number (decimal) the provisioner asks the container to send to the kernel's
    process (``terminate``); taken by the container.
``skein-jupyter.kernel.ended``
    Why the container ended the kernel by itself: ``lease`` or ``idle``.

Every kind:

``skein-jupyter.error``
    A one-line reason, set when the runtime fails before doing its job.
"""

NOTEBOOK_INFO = "jupyter.notebook.info"
NOTEBOOK_STATUS = "skein-jupyter.notebook.status"
NOTEBOOK_STOP = "skein-jupyter.notebook.stop"
NOTEBOOK_FRONTEND = "skein-jupyter.notebook.frontend"
NOTEBOOK_WORKSPACE = "skein-jupyter.notebook.workspace"
NOTEBOOK_CERTIFICATE = "skein-jupyter.notebook.certificate"
NOTEBOOK_WARNING = "skein-jupyter.notebook.warning"
ERROR = "skein-jupyter.error"

RUN_PREFIX = "skein-jupyter.run."
RUN_OUTPUT = RUN_PREFIX + "output"
RUN_SETS = RUN_PREFIX + "sets"
RUN_PROGRESS = RUN_PREFIX + "progress."
RUN_RESULT = RUN_PREFIX + "result."
RUN_NEXT = RUN_PREFIX + "next"
RUN_CLAIM = RUN_PREFIX + "claim."
RUN_STARTED = RUN_PREFIX + "started."
RUN_ATTEMPTS = RUN_PREFIX + "attempts."
RUN_SUMMARY = RUN_PREFIX + "summary"
RUN_FINALIZE = RUN_PREFIX + "finalize"
RUN_STOP = RUN_PREFIX + "stop"

FLOW_PREFIX = "skein-jupyter.flow."
FLOW_STATE = FLOW_PREFIX + "state"
FLOW_ATTEMPT = FLOW_PREFIX + "attempt."
FLOW_INPUTS = FLOW_PREFIX + "inputs."
FLOW_PROGRESS = FLOW_PREFIX + "progress."
FLOW_RESULT = FLOW_PREFIX + "result."
FLOW_STOP = FLOW_PREFIX + "stop."

KERNEL_PREFIX = "skein-jupyter.kernel."
KERNEL_CONNECTION = KERNEL_PREFIX + "connection"
KERNEL_HEARTBEAT = KERNEL_PREFIX + "heartbeat"
KERNEL_SIGNAL = KERNEL_PREFIX + "signal"
KERNEL_ENDED = KERNEL_PREFIX + "ended"
