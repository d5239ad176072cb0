"""What both daemons share and no driver needs (STYLE.md §1).

``logging`` and ``redaction`` (structlog set-up, secrets kept out of the output), ``sdnotify``
(READY/STOPPING and the watchdog), ``signals`` (two-stage SIGTERM/SIGINT), ``backoff`` (the one
reconnect/retry delay), ``config`` (``ConfigError``, the validation-error formatter, secret
references, the TLS table) and ``mqtt`` (the only module touching aiomqtt's and paho's private
attributes). Nothing here imports the agent, the controller or a driver.
"""
