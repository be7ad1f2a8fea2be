# Raw HTTP corner cases with curl, sourced by run.sh (ok/bad, GATEWAY_URL, KEY_A are there).
:
