"""metarl.agents: placeholder package (filled by later issues)."""
