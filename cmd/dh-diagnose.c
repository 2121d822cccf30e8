/* dh-diagnose: explain the state of a channel: who is dead or stalled, what is stuck, how to fix it. See LICENSE. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "diagnose.h"

static const char synopsis[] = "dh-diagnose [--json] [--slot N] [--key FILE] [--stall-after DUR] NAME";

#define STALL_DEFAULT_NS 10000000000ull

enum { OPT_JSON = 256, OPT_KEY, OPT_SLOT, OPT_STALL };

static const struct option longopts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "slot", required_argument, NULL, OPT_SLOT },
	{ "stall-after", required_argument, NULL, OPT_STALL },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

struct opts {
	const char *name, *keyfile;
	int json;
	int64_t slot;            /* -1: whole channel */
	uint64_t stall_ns;
};

static _Noreturn void
help(void)
{
	cli_print_usage(stdout, (const char *const[]){ synopsis, NULL });
	putchar('\n');
	printf("Explain the state of channel NAME without changing it: geometry, writer and\n"
	       "readers (ALIVE, DEAD, STALLED, EVICTED, INACCESSIBLE), slots in unusual\n"
	       "states with what they block and the command that fixes them, and the\n"
	       "integrity of the committed messages.\n\n"
	       "  --json             one JSON object with the same content\n"
	       "  --slot N           show slot N's descriptor in detail\n"
	       "  --key FILE         MAC key file: verify the MACs of a keyed channel\n"
	       "  --stall-after DUR  a live reader holding the writer back this long is\n"
	       "                     STALLED (default 10s)\n"
	       "  -h, --help         print this help and exit\n"
	       "  -V, --version      print the version and exit\n\n"
	       "Exit status: 0 healthy, 1 problems found, 2 cannot check.\n");
	exit(cli_close_stdout());
}

static void
parse(int argc, char **argv, struct opts *o)
{
	char buf[64];
	uint64_t v;
	int64_t ns;
	int c;

	memset(o, 0, sizeof *o);
	o->slot = -1;
	o->stall_ns = STALL_DEFAULT_NS;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			help();
		case OPT_JSON:
			o->json = 1;
			break;
		case OPT_KEY:
			o->keyfile = optarg;
			break;
		case OPT_SLOT:
			if (cli_parse_u64(optarg, 0, DH_SLOTS_MAX - 1, &v) < 0)
				cli_die(EXIT_USAGE, "--slot %s: invalid slot number", cli_safe(optarg, buf, sizeof buf));
			o->slot = (int64_t)v;
			break;
		case OPT_STALL:
			ns = cli_opt_duration("stall-after", optarg);
			o->stall_ns = ns < 0 ? UINT64_MAX : (uint64_t)ns;
			break;
		case 'V':
			cli_version();
		default:
			cli_bad_option(synopsis, c, argv);
		}
	}
	if (argc - optind < 1)
		cli_usage(synopsis, "missing channel name");
	if (argc - optind > 1)
		cli_usage(synopsis, "one channel name expected, got %d", argc - optind);
	o->name = argv[optind];
	if (dh_name_check(o->name) < 0)
		cli_die(EXIT_USAGE, "%s: invalid channel name", cli_safe(o->name, buf, sizeof buf));
}

static int
report_corrupt(const struct opts *o, int rc)
{
	if (o->json) {
		json_t *j = json_object();
		json_object_set_new(j, "channel", json_string(o->name));
		json_object_set_new(j, "verdict", json_string("corrupt"));
		json_object_set_new(j, "exit", json_integer(EXIT_FAIL));
		json_object_set_new(j, "error", json_string(dh_strerror(rc)));
		diag_emit_json(j);
	} else {
		printf("channel     %s\nverdict     corrupt: %s\n"
		       "            no repair is provably safe: recreate the channel once nobody uses it\n",
		       o->name, dh_strerror(rc));
	}
	return cli_close_stdout() ? EXIT_USAGE : EXIT_FAIL;
}

int
main(int argc, char **argv)
{
	static struct dh_snapshot snap;
	struct opts o;
	struct model m;
	uint8_t key[DH_KEY_BYTES];
	int rc, ret;

	cli_init(argc, argv);
	parse(argc, argv, &o);
	if (o.keyfile)
		cli_key_load(o.keyfile, key, EXIT_USAGE);

	/* A segment truncated under us faults on access: report, never crash. */
	cli_bus_catch();
	if (sigsetjmp(cli_bus_env, 1)) {
		cli_warn("%s: segment truncated while being read", o.name);
		return EXIT_FAIL;
	}
	cli_bus_armed = 1;

	memset(&m, 0, sizeof m);
	m.name = o.name;
	m.s = &snap;
	rc = dh_block_open(o.name, DH_OPEN_RDONLY, &m.b);
	if (rc == -DH_ECORRUPT || rc == -DH_EVERSION)
		return report_corrupt(&o, rc);
	if (rc == -ENOENT)
		cli_die(EXIT_USAGE, "%s: no such channel", o.name);
	if (rc < 0)
		cli_diec(EXIT_USAGE, rc, "%s", o.name);
	if (o.keyfile) {
		rc = dh_block_set_key(m.b, key);
		dh_key_wipe(key);
		if (rc == -DH_ENOTKEYED)
			cli_warn("%s: channel has no key: --key ignored", o.name);
		else if (rc < 0)
			cli_diec(EXIT_USAGE, rc, "%s", o.name);
	}
	m.verifiable = dh_block_verifiable(m.b);
	if ((rc = dh_block_snapshot(m.b, &snap)) < 0)
		cli_diec(EXIT_USAGE, rc, "%s: snapshot", o.name);
	if ((rc = dh_check_run(m.b, 0, o.stall_ns, &m.rep)) < 0)
		cli_diec(EXIT_USAGE, rc, "%s: check", o.name);
	if (o.slot >= 0 && (uint64_t)o.slot >= snap.cfg.slots)
		cli_die(EXIT_USAGE, "--slot %lld: the channel has %" PRIu32 " slots", (long long)o.slot,
			snap.cfg.slots);
	m.claim_head = snap.claim_head;
	m.record_size = dh_block_schema(m.b, m.schema, sizeof m.schema, m.schema_hash);
	if (m.record_size < 0)
		m.record_size = 0;
	if (!(m.fv = calloc(m.rep.n ? m.rep.n : 1, sizeof *m.fv)))
		cli_diec(EXIT_USAGE, -ENOMEM, "%s", o.name);
	for (size_t i = 0; i < m.rep.n; i++) {
		m.fv[i].f = &m.rep.f[i];
		diag_advise(&m, &m.fv[i]);
		m.failing += m.rep.f[i].kind == DH_FIND_CHECKSUM;
		m.quarantined += m.rep.f[i].kind == DH_FIND_QUARANTINED;
	}
	ret = m.rep.problems ? EXIT_FAIL : EXIT_OK;

	if (o.slot >= 0) {
		struct slotview v;
		diag_slot_view(&m, (uint32_t)o.slot, &v);
		if (o.json) {
			json_t *j = json_object();
			json_object_set_new(j, "channel", json_string(o.name));
			json_object_set_new(j, "verdict", json_string(ret ? "problems" : "healthy"));
			json_object_set_new(j, "exit", json_integer(ret));
			json_object_set_new(j, "slot", diag_slot_json(&v));
			diag_emit_json(j);
		} else {
			diag_slot_text(&m, &v);
		}
	} else if (o.json) {
		diag_emit_json(diag_channel_json(&m));
	} else {
		diag_channel_text(&m);
	}
	free(m.fv);
	dh_report_free(&m.rep);
	dh_block_close(m.b);
	if (cli_close_stdout() != 0)
		return EXIT_USAGE;
	return ret;
}
