"""The kernel the container runs: ipykernel's, with an interrupt that reaches a cell even as it starts.

``runtime/kernel.py`` writes this file next to the kernel's connection file and runs
it as a script (``python kernel_launcher.py -f kernel.json``), as
``python -m ipykernel_launcher`` would be run: the runtime itself stays off the
kernel's path.

Why: ipykernel answers an ``interrupt_request`` (``interrupt_mode: message``) by
sending itself one SIGINT, wherever its main thread is at that moment. A client
that interrupts a cell as soon as it sees the cell's ``busy`` status (a user
quick on the stop button, a test, a slow machine) can hit ipykernel's own code
before or after the cell: between ``busy`` and the handler's start SIGINT is
still ignored (the interrupt is lost and the cell runs on), and once ipykernel
has installed its handler a KeyboardInterrupt raised in its own code or in
IPython's (history, transformers, ``pre_run_cell`` hooks) is caught with
"KeyboardInterrupt caught in kernel" and the ``execute_request`` gets no
reply at all: the client waits forever. Here an interrupt that arrives while
an ``execute_request`` is being handled is sent again every
:data:`RETRY` seconds until it lands in the cell's code (KeyboardInterrupt
there, an error reply as usual), or the request is over (then it had nothing
left to interrupt). One delivery that lands in a hook IPython runs around the
cell (``EventManager.trigger``: autoreload, matplotlib's figure rendering)
raises there, once, as plain ipykernel would: IPython reports it and goes on,
and a cell after the hook is still interrupted. Any other SIGINT keeps
ipykernel's behaviour.
"""
import os
import signal
import sys
import threading
import time

#: Seconds between two deliveries of one interrupt that did not land in the cell yet.
RETRY = 0.05


def kernel_class() -> type:
    """ipykernel's kernel class with the interrupt described above (imports ipykernel: call it in the kernel)."""
    from ipykernel.ipkernel import IPythonKernel
    from IPython.core.interactiveshell import InteractiveShell

    from IPython.core.events import EventManager

    run_code = getattr(InteractiveShell.run_code, "__code__", None)  # runs each cell: exec(cell, user_ns)
    trigger = getattr(EventManager.trigger, "__code__", None)  # runs the hooks (pre_run_cell, post_execute, ...)

    def called_by(frame, caller):
        """Whether ``frame`` is code that ``caller`` (a code object) called, or code called from there."""
        while frame is not None:
            if frame.f_back is not None and frame.f_back.f_code is caller:
                return True
            frame = frame.f_back
        return False

    def in_cell(frame):
        return called_by(frame, run_code)

    class Kernel(IPythonKernel):
        _handling = None  # a token for the shell request the main thread handles now
        _execute = False  # whether that request is an execute_request (assumed until should_handle tells)
        _typing = False  # its type is not known yet (should_handle, before its handler starts, tells)
        _interrupt = None  # the interrupt being delivered to that request, until it lands
        _landed = None  # the request an interrupt landed in: a late copy of it is ignored
        _hooked = None  # the interrupt that stopped a hook already
        _lock = threading.Lock()  # no SIGINT sent for a request once it is over (not taken by the handler)

        async def dispatch_shell(self, msg, *args, **kwargs):
            if args or kwargs.get("subshell_id") is not None or kwargs.get("concurrent"):
                return await super().dispatch_shell(msg, *args, **kwargs)  # not the main thread's request
            self._handling, self._execute, self._typing = object(), True, True
            try:
                return await super().dispatch_shell(msg, *args, **kwargs)
            finally:
                with self._lock:
                    self._handling = self._interrupt = self._landed = self._hooked = None
                    self._typing = False

        def should_handle(self, stream, msg, idents):
            if self._typing:  # the main thread's request (a comm message handled meanwhile is not)
                self._typing, self._execute = False, msg["header"]["msg_type"] == "execute_request"
            return super().should_handle(stream, msg, idents)

        def pre_handler_hook(self):
            self.saved_sigint_handler = signal.signal(signal.SIGINT, self._on_sigint)

        def _on_sigint(self, signum, frame):
            token = self._handling
            if self._interrupt is None:
                if token is not None and self._landed is token:
                    return  # a copy the delivery thread sent while the interrupt landed
                raise KeyboardInterrupt  # a SIGINT from elsewhere: as ipykernel
            if self._execute and run_code is not None and not in_cell(frame):
                if trigger is not None and self._hooked is not self._interrupt and called_by(frame, trigger):
                    # In a hook (autoreload, matplotlib's figure rendering): stopped as with plain ipykernel,
                    # once per interrupt (IPython reports it and goes on); a cell after it is interrupted still.
                    self._hooked = self._interrupt
                    raise KeyboardInterrupt
                return  # in ipykernel's or IPython's own code: the delivery thread sends it again
            self._landed, self._interrupt = token, None
            raise KeyboardInterrupt

        def _send_interrupt_children(self):  # on the control thread
            with self._lock:
                token = self._handling
                if token is not None and self._execute:
                    if self._interrupt is None:  # else one is on its way already
                        self._interrupt = delivery = object()
                        threading.Thread(target=self._deliver, args=(token, delivery), daemon=True,
                                         name="skein-jupyter-interrupt").start()
                    return
            super()._send_interrupt_children()

        def _deliver(self, token, delivery):
            while True:
                with self._lock:
                    if self._interrupt is not delivery or self._handling is not token:
                        return
                    os.kill(os.getpid(), signal.SIGINT)
                time.sleep(RETRY)

    return Kernel


def main() -> None:
    # As ipykernel_launcher: no script directory on the path while ipykernel loads (IPython adds the cwd back).
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(kernel_class=kernel_class())


if __name__ == "__main__":
    main()
