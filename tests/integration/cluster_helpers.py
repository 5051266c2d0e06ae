"""Small helpers for tests that talk to the local cluster."""
import time


def poll(predicate, timeout, interval=2.0, what='condition'):
    """Call predicate until it returns something truthy; return that value.

    A loaded 2-core machine makes every step slow now and then, so tests poll
    with generous deadlines instead of sleeping for fixed times.
    """
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (TypeError, AttributeError, NameError):
            raise  # a bug in the test, not a slow cluster
        except Exception as error:  # pylint: disable=broad-except  # keep polling through API hiccups
            last_error = error
        if time.monotonic() >= deadline:
            raise AssertionError('timed out after %ss waiting for %s (last error: %r)' % (timeout, what, last_error))
        time.sleep(interval)
