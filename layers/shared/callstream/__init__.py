"""callstream: live Vobiz call audio into AWS.

The domain package shared by every Lambda function (as a layer) and the Fargate stream server.
Pure modules (vocabulary, protocol, codecs, records, assembler, vad, wav, callbacks, tokens,
clock) do no I/O. AWS and Vobiz are reached through ``adapters``, except three calls made in
place with urllib3 (the control hop to a task in ``streams``, the task probe in ``sweeper``)
and a Comprehend client built in ``sentiment``.
"""

__version__ = "0.1.0"
