"""The one error type every service client raises."""

from __future__ import annotations


class ServiceError(Exception):
    """A remote or embedded service failed.

    Attributes:
        service: which service (``comfyui``, ``chatterbox``, ``llm``, ``piper``, ``ffmpeg``...).
        status: the HTTP status code, when there was one.
        server_message: what the server itself said, verbatim (never contains secrets we sent).
        retryable: whether repeating the same call may succeed (connection errors, 5xx, 429).
        retry_after: seconds the server asked to wait before repeating it (``Retry-After``).
    """

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        server_message: str | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.service = service
        self.status = status
        self.server_message = server_message
        self.retryable = retryable
        self.retry_after = retry_after
        self.message = message
        parts = [f"[{service}]"]
        if status is not None:
            parts.append(f"HTTP {status}:")
        parts.append(message)
        if server_message and server_message not in message:
            parts.append(f"(server said: {server_message})")
        super().__init__(" ".join(parts))
