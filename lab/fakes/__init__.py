"""Fake vendor clouds for the tests, the demo and the bench: aiohttp servers on loopback that
follow the documented wire formats (/work/shared/reference/vendor-apis.md, copied shapes)."""
