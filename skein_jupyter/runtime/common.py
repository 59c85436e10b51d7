"""What every runtime entry point shares: its log line, its way of failing, its master connection."""
import sys

from . import keys


def log(message):
    print(f"skein-jupyter runtime: {message}", file=sys.stderr, flush=True)


def fail(app_client, message):
    """Say why on stderr (aggregated logs) and in the key-value store; returns the exit code 1."""
    log(f"error: {message}")
    if app_client is not None:
        try:
            app_client.kv[keys.ERROR] = message.encode()
        except Exception:  # the store is best effort here; the log has the message
            pass
    return 1


def connect():
    """The application master of this container, or None (said in the log) if it cannot be reached."""
    try:
        import skein

        return skein.ApplicationClient.from_current()
    except Exception as exc:
        log(f"error: cannot reach the application master: {exc}")
        return None
