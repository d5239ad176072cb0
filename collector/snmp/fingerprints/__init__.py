"""Fingerprint data: one TOML file per vendor, validated when loaded (see :mod:`collector.snmp.catalog`)."""
