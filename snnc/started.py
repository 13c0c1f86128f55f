"""When snnc was first imported: the start of a run where /proc cannot say when the process started."""
import time

IMPORTED_AT = time.perf_counter()
