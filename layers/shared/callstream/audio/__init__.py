"""The sans-I/O audio core: pure, synchronous, no environment, no boto3, no sockets.

``protocol`` parses Vobiz's WebSocket messages; ``assembler`` turns a stream's messages into
typed ``events`` and Kinesis ``records``; ``codecs``, ``vad`` and ``wav`` are the signal work.
"""
