"""Where bytes live: the Redis tiers (STM, IM), the SQL long-term tier, and the Redis connection."""
