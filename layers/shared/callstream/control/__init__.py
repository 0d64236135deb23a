"""The control plane: the operations behind the HTTP routes, and the contracts they keep.

``operations`` (start, stop, get, list, reconcile, control), ``commands`` (the control contract
shared by the control Lambda and the stream server's task), ``webhooks`` (Vobiz's signed
callbacks, hang-up and answer), ``answer`` (the ``<Stream>`` XML), ``callbacks`` (signatures and
callback parsing), ``tokens``, ``registry`` (the registry's item model).
"""
