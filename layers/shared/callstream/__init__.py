"""callstream: live Vobiz call audio into AWS.

The domain package shared by every Lambda function (as a layer) and the Fargate stream server.
Its sub-packages are the architecture; an arrow only ever points down this list::

    audio/       the sans-I/O core: Vobiz messages in, typed events and Kinesis records out
    control/     the control plane: operations, the control contract, callbacks, tokens, XML
    analytics/   the Kinesis and EventBridge consumers: recording, transcripts, sentiment
    adapters/    the only code that imports boto3 or an HTTP client
    wiring       the Lambdas' composition root: settings → adapters → services, cached
    ports, settings, exceptions, vocabulary, clock, logsafety, http   shared by all of them

``audio`` imports nothing outside itself but the shared modules; ``control`` and ``analytics``
reach AWS and Vobiz through ``ports`` (implemented in ``adapters``), and only ``wiring`` (and the
stream server's own ``stream_server.wiring``) builds adapters.
"""

__version__ = "0.1.0"
