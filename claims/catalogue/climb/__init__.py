"""The seed's gridworld climb: its claims (claims.py), their declared families of bias patterns
(family.py) and the offline explorer page (explorer.py, assets/climb_explorer.html)."""
