"""callstream: live Vobiz call audio into AWS.

The domain package shared by every Lambda function (as a layer) and the Fargate stream server.
Pure modules (protocol, codecs, records, assembler, vad, callbacks, tokens) do no I/O; only
``adapters`` talks to AWS and Vobiz.
"""

__version__ = "0.1.0"
