"""LLDP driver: a switch's LLDP-MIB remote table, read over SNMP, reports its neighbours."""
