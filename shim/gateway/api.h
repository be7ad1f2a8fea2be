/* capsule-gateway: libmicrohttpd's callbacks (api.c). */
#pragma once

#include <microhttpd.h>

enum MHD_Result api_handle (void *cls, struct MHD_Connection *conn, const char *url,
                            const char *method, const char *version, const char *upload_data,
                            size_t *upload_data_size, void **req_cls);
void api_completed (void *cls, struct MHD_Connection *conn, void **req_cls,
                    enum MHD_RequestTerminationCode toe);
void api_connection (void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode toe);
