"""metarl.sim2real: placeholder package (filled by later issues)."""
