"""Where this task is reachable: its private IP from the ECS task metadata endpoint (v4).

The control API reaches a stream's task at ``http://<task private IP>:<control port>``; the
server records that address in the registry when a stream starts. Off ECS it is 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request

log = logging.getLogger("callstream.ecs")


def task_ip(timeout_s: float = 2.0) -> str:
    """This task's private IPv4 address (``awsvpc`` mode), or 127.0.0.1 off ECS."""
    uri = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if not uri:
        return "127.0.0.1"
    try:
        with urllib.request.urlopen(f"{uri}/task", timeout=timeout_s) as response:  # noqa: S310
            task = json.load(response)
        return str(task["Containers"][0]["Networks"][0]["IPv4Addresses"][0])
    except (OSError, KeyError, IndexError, ValueError) as error:
        log.error("cannot read the task's address from ECS metadata: %s", error)
        raise


def control_address(port: int) -> str:
    """The base URL of this task's control endpoint."""
    return f"http://{task_ip()}:{port}"
