/* capsule: bring `lo` up over rtnetlink (RTM_NEWLINK with IFF_UP), checked by the kernel's ACK. */
#define _GNU_SOURCE
#include "netlink.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <time.h>

#include "utils.h"

static void
socket_closep (struct mnl_socket **nl)
{
  if (*nl)
    mnl_socket_close (*nl);
}

int
netlink_loopback_up (capsule_error **err)
{
  __attribute__ ((cleanup (socket_closep))) struct mnl_socket *nl = NULL;
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct nlmsghdr *nlh;
  struct ifinfomsg *ifm;
  unsigned seq = time (NULL), portid;
  int ifindex = if_nametoindex ("lo");
  ssize_t n;

  if (ifindex == 0)
    return capsule_error_make (err, errno, "find interface lo");
  nl = mnl_socket_open (NETLINK_ROUTE);
  if (nl == NULL)
    return capsule_error_make (err, errno, "open rtnetlink socket");
  if (mnl_socket_bind (nl, 0, MNL_SOCKET_AUTOPID) < 0)
    return capsule_error_make (err, errno, "bind rtnetlink socket");
  portid = mnl_socket_get_portid (nl);

  nlh = mnl_nlmsg_put_header (buf);
  nlh->nlmsg_type = RTM_NEWLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  ifm = mnl_nlmsg_put_extra_header (nlh, sizeof *ifm);
  ifm->ifi_family = AF_UNSPEC;
  ifm->ifi_index = ifindex;
  ifm->ifi_flags = IFF_UP;
  ifm->ifi_change = IFF_UP;

  if (mnl_socket_sendto (nl, nlh, nlh->nlmsg_len) < 0)
    return capsule_error_make (err, errno, "send RTM_NEWLINK for lo");
  n = mnl_socket_recvfrom (nl, buf, sizeof buf);
  if (n < 0)
    return capsule_error_make (err, errno, "receive the answer to RTM_NEWLINK");
  if (mnl_cb_run (buf, n, seq, portid, NULL, NULL) < 0)
    return capsule_error_make (err, errno, "bring lo up");
  return 0;
}
