"""One pool of helper threads per process, for the parts of a request that need not wait for each other.

Used for work that runs in C with the GIL released (image encoding and masks while the model runs;
object writes side by side), so a request can use an idle core. Its threads start on first use, so
a gunicorn worker gets its own after the fork. Tasks never wait on other tasks: no deadlock when full.
"""

from concurrent.futures import ThreadPoolExecutor

POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="background")
