"""SNMP driver (gufo-snmp): SNMPv2c and SNMPv3, system group, ENTITY-MIB, IF-MIB."""

from collector.snmp.driver import SnmpDriver
from collector.snmp.identify import Identification, identify
from collector.snmp.options import SnmpOptions

__all__ = ["Identification", "SnmpDriver", "SnmpOptions", "identify"]
