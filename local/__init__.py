"""The embedded stack: everything callstream needs to run on one machine without AWS or Vobiz."""
