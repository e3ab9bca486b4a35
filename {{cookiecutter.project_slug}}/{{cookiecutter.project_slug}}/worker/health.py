"""The worker's health check: `python -m {{ cookiecutter.project_slug }}.worker.health [file]`.

Exit 0 when the worker is healthy, idle or busy; exit 1 with one line on stderr saying why
when it is not. It reads the heartbeat file the worker writes at each turn of its loop and at
each task's start and end, and never imports Django: it runs every few seconds.

- no file: the worker has not started its loop yet (or never will);
- a task in the file running longer than TASKS_MAX_RUNTIME: stuck in that task;
- no task, and the file older than STALE_TURNS turns of the loop plus STALE_MARGIN seconds:
  the loop itself is stuck (or the worker is gone).
A worker busy with a task within TASKS_MAX_RUNTIME is healthy, however long ago the file was
written: the file is not rewritten while a task runs.
"""

import json
import sys
import time

HEARTBEAT_FILE = "/tmp/worker-heartbeat.json"
# A turn of the loop, idle, is a sleep of `interval` seconds and one query: the margin covers a
# slow query, a database being restarted (the loop waits for it) and a loaded machine.
STALE_TURNS = 3
STALE_MARGIN = 30


def problem(path=HEARTBEAT_FILE, now=None):
    """Why the worker is unhealthy, in a line; None when it is healthy."""
    now = time.time() if now is None else now
    try:
        with open(path) as file:
            state = json.load(file)
    except FileNotFoundError:
        return f"no heartbeat yet: {path} does not exist"
    except (OSError, ValueError) as error:
        return f"unreadable heartbeat file {path}: {error}"
    task = state.get("task")
    if task:
        running = now - task["started_at"]
        if running > state["max_runtime"]:
            return (f"stuck: task {task['task']} ({task['id']}) has run for {running:.0f} s, "
                    f"longer than TASKS_MAX_RUNTIME ({state['max_runtime']} s)")
        return None
    age, bound = now - state["at"], STALE_TURNS * state["interval"] + STALE_MARGIN
    if age > bound:
        return f"heartbeat older than {bound:.0f} s: {age:.0f} s (worker pid {state['pid']})"
    return None


def main(arguments):
    found = problem(*arguments[:1])
    if found:
        print(found, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
