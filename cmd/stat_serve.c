/* stat_serve.c: dh-stat --serve, the Prometheus scrape endpoint (libmicrohttpd). See LICENSE. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cli.h"
#include "stat_mon.h"

/*
 * What a hostile or broken client can take.  MHD is event-driven (one
 * thread, epoll): a client that dribbles its request holds one connection
 * slot and nothing else, so the limits below are the whole budget.
 *  - CONN_LIMIT connections in all, PER_IP_LIMIT of them from one address:
 *    one host cannot take every slot;
 *  - CONN_TIMEOUT_S seconds without traffic closes a connection;
 *  - CONN_MEMORY bytes of pool per connection hold the request line and
 *    headers: a larger request is refused (431) and closed.  Prometheus
 *    sends a few hundred bytes.
 * The response (the rendered metrics) is allocated per scrape and freed
 * when sent, so memory is bounded by CONN_LIMIT times one rendering.
 */
#define CONN_LIMIT 64
#define PER_IP_LIMIT 16
#define CONN_TIMEOUT_S 10
#define CONN_MEMORY (16u << 10)
#define BACKLOG 64

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct server {
	const struct stat_source *src;
	unsigned long long scrapes;
};

static enum MHD_Result
reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
metrics(struct server *s, struct MHD_Connection *c)
{
	struct MHD_Response *r;
	struct stat_frame f;
	enum MHD_Result ret;
	char *doc = NULL;
	int rc;

	if ((rc = s->src->take(s->src->arg, &f)) < 0 ||
	    (rc = dh_stat_prometheus(f.ch, f.n, f.now_ns, s->src->flags, &doc)) < 0)
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  rc == -ENOMEM ? "out of memory\n" : "cannot list the channels\n");
	r = MHD_create_response_from_buffer(strlen(doc), doc, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(doc);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	s->scrapes++;
	return ret;
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
       const char *upload, size_t *upload_size, void **state)
{
	static int seen;

	(void)version;
	(void)upload;
	/* Other methods are answered at once, before any body is read: MHD
	 * then closes the connection rather than read what is left. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET /metrics\n");
	/* GET and HEAD: the answer waits for the end of the request (a reply
	 * queued on the first call would make MHD close the connection, and
	 * Prometheus keeps its connections for the next scrape); a body, which
	 * they should not have, is dropped as it comes */
	if (*state == NULL) {
		*state = &seen;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return reply_text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
	return metrics(cls, c);
}

/* ADDR into a listening socket, or exit: 2 if ADDR is malformed, 1 if it
 * cannot be bound.  The printable address goes to shown. */
static int
listen_on(const char *addr, const char *synopsis, char *shown, size_t cap)
{
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[256], port[8], safe[80], num[INET6_ADDRSTRLEN];
	const char *colon, *h, *p;
	size_t hl;
	uint64_t v;
	int fd, one = 1, rc;

	cli_safe(addr, safe, sizeof safe);
	colon = strrchr(addr, ':');
	if (colon == NULL) {            /* PORT alone: loopback */
		h = "127.0.0.1";
		hl = strlen(h);
		p = addr;
	} else {
		h = addr;
		hl = (size_t)(colon - addr);
		p = colon + 1;
		if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
			h++;
			hl -= 2;
		} else if (memchr(h, ':', hl) != NULL) {
			cli_usage(synopsis, "--serve %s: an IPv6 address goes in brackets: [::1]:PORT", safe);
		}
	}
	if (hl == 0)
		cli_usage(synopsis, "--serve %s: name the address to listen on: 127.0.0.1:PORT "
			  "(0.0.0.0:PORT for every interface)", safe);
	if (hl >= sizeof host)
		cli_usage(synopsis, "--serve %s: address too long", safe);
	if (cli_parse_u64(p, 0, 65535, &v) < 0)
		cli_usage(synopsis, "--serve %s: invalid port (0 to 65535)", safe);
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, sizeof port, "%u", (unsigned)v);
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0)
		cli_usage(synopsis, "--serve %s: %s", safe, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0)
		cli_die(EXIT_FAIL, "--serve %s: socket: %s", safe, strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ai->ai_family == AF_INET6)     /* [::] means IPv6 only, as written */
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0)
		cli_die(EXIT_FAIL, "--serve %s: %s", safe, strerror(errno));
	freeaddrinfo(ai);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		cli_die(EXIT_FAIL, "--serve %s: %s", safe, strerror(errno));
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, num, sizeof num);
		snprintf(shown, cap, "[%s]:%u", num, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, num, sizeof num);
		snprintf(shown, cap, "%s:%u", num, ntohs(s4->sin_port));
	}
	return fd;
}

int
stat_serve(const char *addr, const char *synopsis, const struct stat_source *src)
{
	struct server s = { .src = src };
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	char shown[INET6_ADDRSTRLEN + 16];
	int fd, efd;

	fd = listen_on(addr, synopsis, shown, sizeof shown);
	/* MHD sends with MSG_NOSIGNAL; this covers any other path */
	signal(SIGPIPE, SIG_IGN);
	cli_catch_signals(0);
	d = MHD_start_daemon(MHD_USE_EPOLL, 0, NULL, NULL, answer, &s,
			     MHD_OPTION_LISTEN_SOCKET, fd,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)PER_IP_LIMIT,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
			     MHD_OPTION_END);
	if (d == NULL)
		cli_die(EXIT_FAIL, "--serve %s: cannot start the HTTP server", shown);
	if ((info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD)) == NULL)
		cli_die(EXIT_FAIL, "--serve %s: no event descriptor", shown);
	efd = info->epoll_fd;
	/* where it listens, for the log (and for whoever asked for port 0) */
	fprintf(stderr, "%s: serving http://%s/metrics\n", cli_prog, shown);

	while (!cli_signal) {
		struct pollfd pf[2] = { { .fd = efd, .events = POLLIN }, { .fd = cli_signal_fd(), .events = POLLIN } };
		MHD_UNSIGNED_LONG_LONG to;
		int ms = 1000;

		/* MHD's own deadline (connection timeouts), at most a second so a
		 * missed wakeup costs little */
		if (MHD_get_timeout(d, &to) == MHD_YES && to < 1000)
			ms = (int)to;
		if (poll(pf, pf[1].fd >= 0 ? 2 : 1, ms) < 0 && errno != EINTR)
			cli_die(EXIT_FAIL, "--serve %s: poll: %s", shown, strerror(errno));
		if (cli_signal)
			break;
		MHD_run(d);
	}
	MHD_stop_daemon(d);   /* closes fd too */
	return EXIT_OK;
}
