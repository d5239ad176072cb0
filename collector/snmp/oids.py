"""The OIDs the driver reads, numeric (no MIB files are loaded at run time)."""

from __future__ import annotations

# SNMPv2-MIB system group (RFC 3418 §2).
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_CONTACT = "1.3.6.1.2.1.1.4.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
SYS_SERVICES = "1.3.6.1.2.1.1.7.0"
SYSTEM_GROUP = (SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_CONTACT, SYS_NAME, SYS_LOCATION, SYS_SERVICES)

# IF-MIB ifTable entry (RFC 2863 §6): column number → name.
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IF_COLUMNS = {
    1: "ifIndex",
    2: "ifDescr",
    3: "ifType",
    4: "ifMtu",
    5: "ifSpeed",
    6: "ifPhysAddress",
    7: "ifAdminStatus",
    8: "ifOperStatus",
    10: "ifInOctets",
    14: "ifInErrors",
    16: "ifOutOctets",
    20: "ifOutErrors",
}

# ENTITY-MIB entPhysicalEntry (RFC 6933 §4): column number → name.
ENT_PHYSICAL_ENTRY = "1.3.6.1.2.1.47.1.1.1.1"
ENT_COLUMNS = {
    2: "entPhysicalDescr",
    5: "entPhysicalClass",
    7: "entPhysicalName",
    8: "entPhysicalHardwareRev",
    9: "entPhysicalFirmwareRev",
    10: "entPhysicalSoftwareRev",
    11: "entPhysicalSerialNum",
    12: "entPhysicalMfgName",
    13: "entPhysicalModelName",
}
ENT_CLASS_CHASSIS = 3
IF_TYPE_SOFTWARE_LOOPBACK = 24
