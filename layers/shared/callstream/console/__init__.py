"""The live console: a feed of every bus event kept per call, and the views the page reads."""
