/* capsule: the OCI "features" document: what this runtime supports. */
#pragma once

char *features_json (void);
