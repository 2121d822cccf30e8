/* read_remote.c: dh-read of a channel another host exports (--connect, or found through the broker). See LICENSE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "read.h"

/* The channel does not exist here and the broker knows an exporter of it:
 * 1, with o->net set to connect there (registered as a remote reader). */
int
read_remote_export(struct read_opts *o)
{
	static char ep[512];
	char path[4096], host[DH_BROKER_HOST_MAX + 1], me[DH_BROKER_HOST_MAX + 1], label[DH_PNAME_MAX];
	const char *env;

	if (dh_block_path(o->name, path, sizeof path) < 0 || access(path, F_OK) == 0 || errno != ENOENT)
		return 0;
	if (o->no_wait || cli_broker_find_export(&o->broker, o->name, ep, sizeof ep, host) < 0)
		return 0;
	o->net.connect = ep;
	if (!o->net.curve_given && (env = getenv("DH_CURVE_DIR")) != NULL && *env)
		o->net.curve = env;
	if (!o->quiet)
		cli_warn("%s: not here: reading it from %s at %s", o->name, host, ep);
	snprintf(label, sizeof label, "net:%s", dh_broker_local_host(me, sizeof me));
	cli_broker_remote_reader(&o->broker, o->name, host, o->ro.label ? o->ro.label : label, ep);
	return 1;
}

/* --connect: read_pump over an exporter's messages. */
int
read_remote(struct read_opts *o)
{
	struct dh_net_client *c;
	int ret, rc;

	o->net.count = o->count;
	c = cli_net_client(&o->net, o->name, &o->ro, o->ro.key ? o->key : NULL, o->want);
	dh_key_wipe(o->key);
	if (o->mode == DH_FRAME_JSON) {
		const struct dh_net_welcome *w;

		if ((rc = dh_net_client_wait_welcome(c, o->timeout_ns)) < 0) {
			char why[256];

			snprintf(why, sizeof why, "%s", cli_net_error(c, rc));
			dh_net_client_close(c);
			if (rc == -EINTR)
				cli_reraise();
			cli_die(rc == -ETIMEDOUT ? EXIT_TIMEOUT : EXIT_FAIL, "%s: %s", o->name, why);
		}
		w = dh_net_client_welcome(c);
		if (w->has_schema && w->schema[0] && ((o->sc = malloc(sizeof *o->sc)) == NULL ||
						       dh_schema_parse(w->schema, o->sc) < 0)) {
			dh_net_client_close(c);
			cli_die(EXIT_FAIL, "%s: the exporter sent a schema that does not parse", o->name);
		}
		if (o->csv && o->sc == NULL) {
			dh_net_client_close(c);
			cli_die(EXIT_FAIL, "%s: channel has no schema: --csv decodes records (dh-create --schema)", o->name);
		}
	}
	ret = read_pump(o, NULL, c);
	cli_broker_stop(&o->broker);
	dh_net_client_close(c);
	free(o->sc);
	free(o->want);
	if (cli_signal)
		cli_reraise();
	if (cli_close_stdout() != 0 && ret == EXIT_OK)
		ret = EXIT_FAIL;
	return ret;
}
