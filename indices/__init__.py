"""Derived indices over the tiers: temporal, spatial, type, importance, attribute and embedding
(FAISS). Every index is rebuilt from the tier it indexes; none is a source of truth."""
