"""The simulated devices of the lab: one snmpsim recording each, selected by SNMPv2c community.

snmpsim serves ``lab/recordings/<community>.snmprec`` to requests carrying that community, so a
device is its community. The expected identity is what the SNMP driver must report for it; the
demo uses the list to write the agent's configuration, and a test polls each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECORDINGS = Path(__file__).resolve().parent / "recordings"


@dataclass(frozen=True, slots=True)
class LabDevice:
    id: str
    community: str
    vendor: str
    family: str
    model: str
    serial: str
    firmware: str  # as the driver reports it: parseable by the firmware catalog's scheme
    scheme: str

    @property
    def recording(self) -> Path:
        return RECORDINGS / f"{self.community}.snmprec"


# fmt: off
LAB_DEVICES: tuple[LabDevice, ...] = (
    # Room devices answer only the system group; all they say is in a multi-line sysDescr.
    LabDevice("ber-konf-2-12", "cisco-roomkitpro-roomos11", "cisco", "roomos", "Cisco Room Kit Pro",
              "FOC2412N0PR", "RoomOS 11.14.2.3", "cisco-roomos"),
    LabDevice("ham-desk-4-07", "cisco-deskpro-roomos11", "cisco", "roomos", "Cisco Desk Pro",
              "FOC2433P1DK", "RoomOS 11.17.1.7", "cisco-roomos"),
    LabDevice("muc-raum-1-04", "cisco-roomkit-ce9", "cisco", "ce", "Cisco Webex Room Kit",
              "FOC2247N8MP", "ce9.15.3.17", "cisco-roomos"),
    # Phones answer ENTITY-MIB and IF-MIB too. MPP loads are reported as the release the
    # catalog reads ("sip88xx.14-2-1MPP0001-272" → "sip88xx.14-2-1MPP"); raw keeps the load.
    LabDevice("sep5ca62d0088a1", "cisco-8851-mpp", "cisco", "mpp", "CP-8851",
              "FCH2402A0B1", "sip88xx.14-2-1MPP", "cisco-mpp"),
    LabDevice("sep00ebd50000c3", "cisco-8845-mpp", "cisco", "mpp", "CP-8845",
              "FCH2403A0C3", "14-2-1MPP", "cisco-mpp"),
    LabDevice("yealink-mp56-1a56", "yealink-mp56", "yealink", "yealink", "MP56",
              "8041B0001A56", "122.15.0.64", "yealink"),
    LabDevice("ccx600-empfang", "poly-ccx600", "poly", "poly", "CCX 600",
              "0004F2A1C600", "8.1.3.1301", "poly"),
)
# fmt: on


def lab_devices() -> list[LabDevice]:
    """Every lab device whose recording is present."""
    return [device for device in LAB_DEVICES if device.recording.is_file()]
