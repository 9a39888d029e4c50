"""What the bench's fresh-process children share (the `rss`, `first` and `zoo` sections): the
source text put before each child's script, since a child runs as `python -c SCRIPT`."""

PRELUDE = '''
import time
def status(key):
    """A field of /proc/self/status, in bytes (VmRSS: now; VmHWM: the peak)."""
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
def ms(f):
    t = time.perf_counter()
    f()
    return 1e3 * (time.perf_counter() - t)
def reset_peak():
    open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) becomes the current RSS
'''
