"""The code that runs inside YARN containers.

Shipped with every application as ``skein_jupyter_runtime.zip`` on
``PYTHONPATH`` and run as ``python -m skein_jupyter_runtime <kind>`` from the
activated environment. It may import only the standard library and what the
environment has for the job (skein, jupyter_server, ipykernel, papermill),
never the rest of skein-jupyter, and uses relative imports only, so that it
works under both package names.
"""
