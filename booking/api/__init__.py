"""The channels' REST API (`/api/v1/…`): token authentication per channel, one exception handler,
views that translate and call one service or selector each."""
