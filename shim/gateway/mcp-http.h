/* capsule-gateway: MCP's Streamable HTTP transport (mcp-http.c). */
#pragma once

#include <microhttpd.h>

#include "gateway.h"

/* Answer METHOD on /mcp for TENANT (its key was checked) with BODY (POST's: BODY_LEN bytes and a
   NUL after them), calling the shim through C. */
enum MHD_Result mcp_http (struct MHD_Connection *conn, const char *tenant, const char *method,
                          const char *body, size_t body_len, struct shimc *c);
