"""Keys of the Skein key-value store that the runtime and the client share.

``jupyter.notebook.info``
    JSON ``{"protocol", "host", "port", "base_url", "token"}``, published once
    the server answers requests; the key and format of skein's own Jupyter
    recipe, so ``skein kv get APP_ID --key jupyter.notebook.info --wait`` works.
``skein-jupyter.notebook.status``
    JSON ``{"started", "last_activity", "connections", "kernels", "idle_seconds",
    "frontend"}``, refreshed every few seconds while the server runs.
``skein-jupyter.notebook.stop``
    Set by ``notebook stop``: the server shuts down cleanly and the
    application ends SUCCEEDED.
``skein-jupyter.error``
    A one-line reason, set when the runtime fails before serving.
"""

NOTEBOOK_INFO = "jupyter.notebook.info"
NOTEBOOK_STATUS = "skein-jupyter.notebook.status"
NOTEBOOK_STOP = "skein-jupyter.notebook.stop"
ERROR = "skein-jupyter.error"
