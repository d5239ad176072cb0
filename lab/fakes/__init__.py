"""Fakes of the vendor clouds and devices (Microsoft Graph, Webex, RoomOS codecs): aiohttp apps
on loopback that follow the documented wire formats in the vendor references exactly."""
