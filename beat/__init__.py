"""The periodic schedule: realtime polls, daily gap sweep, freshness check, dashboard refresh."""
