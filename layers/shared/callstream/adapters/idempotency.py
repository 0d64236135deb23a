"""Once per key: Powertools idempotency on DynamoDB (the :class:`~callstream.ports.Once` port).

The domain hands a function of one plain payload; this runs it at most once per key
(``key_path`` in the payload) for ``expires_s``, answers a retry with the first result, and
turns Powertools' refusals into callstream's :class:`~callstream.exceptions.ConflictError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from callstream.exceptions import ConflictError

Payload = dict[str, Any]


class DynamoOnce:
    """Runs a function once per key, the result kept in DynamoDB."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        key_path: str,
        payload_path: str,
        expires_s: int = 24 * 3600,
    ) -> None:
        self._persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
        self._config = IdempotencyConfig(
            event_key_jmespath=key_path,
            payload_validation_jmespath=payload_path,  # the same key with another body: refused
            expires_after_seconds=expires_s,
        )

    def run(
        self, fn: Callable[[Payload], Payload], payload: Payload, lambda_context: Any = None
    ) -> Payload:
        """``fn(payload)``, or the result of its first run with the same key.

        Raises:
            ConflictError: the key was used with a different payload, or is still in progress.
        """
        if lambda_context is not None:  # lets Powertools expire a stuck in-progress record
            self._config.register_lambda_context(lambda_context)
        once: Callable[..., Payload] = idempotent_function(
            data_keyword_argument="payload",
            persistence_store=self._persistence,
            config=self._config,
        )(fn)
        try:
            return once(payload=payload)
        except IdempotencyValidationError:
            raise ConflictError("Idempotency-Key was already used with a different body") from None
        except IdempotencyAlreadyInProgressError:
            raise ConflictError("a request with this Idempotency-Key is in progress") from None
