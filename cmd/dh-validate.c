/* dh-validate: check channels' integrity and safely reclaim what dead processes held. See LICENSE. */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_print.h"

static const char synopsis[] =
	"dh-validate [--repair] [--force] [--json] [--quiet] [--key FILE] NAME ... | --all";

/* A live reader that holds the writer back is stalled after this long. */
#define STALL_NS 10000000000ull

enum { OPT_ALL = 256, OPT_FORCE, OPT_JSON, OPT_KEY, OPT_REPAIR };

static const struct option longopts[] = {
	{ "all", no_argument, NULL, OPT_ALL },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "help", no_argument, NULL, 'h' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "quiet", no_argument, NULL, 'q' },
	{ "repair", no_argument, NULL, OPT_REPAIR },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

struct opts {
	int all, force, json, quiet, repair;
	const char *keyfile;
	int has_key;
	uint8_t key[DH_KEY_BYTES];
};

static _Noreturn void
help(void)
{
	cli_print_usage(stdout, (const char *const[]){ synopsis, NULL });
	putchar('\n');
	printf("Check the header, geometry, slot descriptors, participant table and the\n"
	       "checksum of every committed message of each channel NAME.\n\n"
	       "  --repair      reclaim what dead processes held, publish a message a dead\n"
	       "                writer completed, quarantine messages failing their check\n"
	       "  --force       with --repair: also cut loose live readers stalling the writer\n"
	       "  --json        one JSON object per channel\n"
	       "  -q, --quiet   print only problems and repairs (for cron)\n"
	       "  --key FILE    MAC key file: verify the MACs of keyed channels\n"
	       "  --all         every channel in /dev/shm\n"
	       "  -h, --help    print this help and exit\n"
	       "  -V, --version print the version and exit\n\n"
	       "Exit status: 0 valid (or all repaired), 1 problems remain, 2 cannot check.\n");
	exit(cli_close_stdout());
}

/* Check (and repair) one channel; returns its exit status. */
static int
validate(const struct opts *o, const char *name, int listed)
{
	static struct dh_block *b;   /* static: survives a SIGBUS jump */
	static struct dh_report rep;
	const struct validate_out vo = { o->json, o->quiet, o->repair };
	char msg[256];
	int rc, ret;
	const int flags = o->repair ? DH_CHECK_REPAIR | (o->force ? DH_CHECK_FORCE : 0) : 0;

	b = NULL;
	memset(&rep, 0, sizeof rep);
	if (dh_name_check(name) < 0)
		return validate_report_error(&vo, name, EXIT_USAGE, "invalid channel name");
	if (sigsetjmp(cli_bus_env, 1)) {
		cli_bus_armed = 0;
		/* the mapping is unusable: leak it rather than touch it again */
		return validate_report_error(&vo, name, EXIT_FAIL, "segment truncated while being checked");
	}
	cli_bus_armed = 1;
	rc = dh_block_open(name, o->repair ? 0 : DH_OPEN_RDONLY, &b);
	if (rc == -ENOENT && listed) {
		cli_bus_armed = 0;
		return EXIT_OK; /* removed since we listed it */
	}
	if (rc < 0) {
		cli_bus_armed = 0;
		if (rc == -ENOENT)
			return validate_report_error(&vo, name, EXIT_USAGE, "no such channel");
		return validate_report_error(&vo, name, rc == -DH_ECORRUPT || rc == -DH_EVERSION ? EXIT_FAIL : EXIT_USAGE,
				    dh_strerror(rc));
	}
	if (o->has_key) {
		rc = dh_block_set_key(b, o->key);
		if (rc == -DH_ENOTKEYED) {
			if (!listed) /* --all goes across keyed and unkeyed channels */
				cli_warn("%s: channel has no key: --key ignored", name);
		} else if (rc == -DH_EKEY && listed) {
			/* --all: other channels have other keys; check them without */
			cli_warn("%s: not this channel's key: MACs not verified", name);
		} else if (rc < 0) {
			cli_bus_armed = 0;
			dh_block_close(b);
			return validate_report_error(&vo, name, EXIT_USAGE, dh_strerror(rc));
		}
	}
	rc = dh_check_run(b, flags, STALL_NS, &rep);
	cli_bus_armed = 0;
	dh_block_close(b);
	if (rc < 0) {
		dh_report_free(&rep);
		snprintf(msg, sizeof msg, "check: %s", dh_strerror(rc));
		return validate_report_error(&vo, name, EXIT_USAGE, msg);
	}
	ret = rep.problems ? EXIT_FAIL : EXIT_OK;
	{
		const char *status = "valid";
		for (size_t i = 0; i < rep.n; i++)
			if (rep.f[i].action == DH_ACT_REPAIRED || rep.f[i].action == DH_ACT_FORCED)
				status = "repaired";
		if (rep.problems)
			status = "problems";
		validate_report(&vo, name, &rep, status, ret);
	}
	for (size_t i = 0; i < rep.n && !o->json; i++)
		if (rep.f[i].kind == DH_FIND_KEY_UNVERIFIED)
			cli_warn("%s: keyed channel: MACs not verified (use --key FILE)", name);
	dh_report_free(&rep);
	return ret;
}

/* Every channel of the channel directory, sorted; a bare "dh." is no
 * channel name at all and is skipped. */
static char **
list_all(void)
{
	char **v;
	size_t j = 0;
	int rc;

	if ((rc = dh_channel_list(&v, NULL)) < 0)
		cli_diec(EXIT_USAGE, rc, "%s", dh_block_dir());
	for (size_t i = 0; v[i] != NULL; i++) {
		if (v[i][0] == '\0')
			free(v[i]);
		else
			v[j++] = v[i];
	}
	v[j] = NULL;
	return v;
}

int
main(int argc, char **argv)
{
	struct opts o;
	char **names, buf[64];
	int c, rc, ret = EXIT_OK;

	cli_init(argc, argv);
	memset(&o, 0, sizeof o);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hqV", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_ALL:
			o.all = 1;
			break;
		case OPT_FORCE:
			o.force = 1;
			break;
		case 'h':
			help();
		case OPT_JSON:
			o.json = 1;
			break;
		case OPT_KEY:
			o.keyfile = optarg;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case OPT_REPAIR:
			o.repair = 1;
			break;
		case 'V':
			cli_version();
		default:
			cli_bad_option(synopsis, c, argv);
		}
	}
	argc -= optind;
	argv += optind;
	if (o.all && argc > 0)
		cli_usage(synopsis, "--all takes no channel names");
	if (!o.all && argc == 0)
		cli_usage(synopsis, "missing channel name");
	if (o.force && !o.repair)
		cli_usage(synopsis, "--force only with --repair");
	for (int i = 0; i < argc; i++)
		if (dh_name_check(argv[i]) < 0)
			cli_die(EXIT_USAGE, "%s: invalid channel name", cli_safe(argv[i], buf, sizeof buf));
	if (o.keyfile) {
		cli_key_load(o.keyfile, o.key, EXIT_USAGE);
		o.has_key = 1;
	}

	/* A segment truncated under us faults on access: report it, never crash. */
	cli_bus_catch();

	names = o.all ? list_all() : argv;
	for (int i = 0; names[i]; i++) {
		rc = validate(&o, names[i], o.all);
		if (rc > ret)
			ret = rc;
	}
	if (o.all)
		dh_channel_list_free(names);
	dh_key_wipe(o.key);
	if (cli_close_stdout() != 0)
		return EXIT_USAGE;
	return ret;
}
