/* dh-create: create or remove a shared-memory channel. See LICENSE. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char synopsis[] =
	"dh-create [--slots N] [--slot-size SIZE] [--policy POLICY] [--checksum KIND] [--key FILE] "
	"[--schema SPEC] [--meta-size SIZE] [--max-readers N] [--mode OCTAL] [--evict-after DUR] [--force] NAME";
static const char synopsis_rm[] = "dh-create --remove [--force] NAME ...";
static const char synopsis_keygen[] = "dh-create --keygen FILE";

enum { OPT_FORCE = 256, OPT_KEY, OPT_KEYGEN, OPT_REMOVE, OPT_SCHEMA };

static const struct option longopts[] = {
	{ "checksum", required_argument, NULL, CLI_OPT_CHECKSUM },
	{ "evict-after", required_argument, NULL, CLI_OPT_EVICT },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "help", no_argument, NULL, 'h' },
	{ "key", required_argument, NULL, OPT_KEY },
	{ "keygen", required_argument, NULL, OPT_KEYGEN },
	{ "max-readers", required_argument, NULL, CLI_OPT_MAX_READERS },
	{ "meta-size", required_argument, NULL, CLI_OPT_META_SIZE },
	{ "mode", required_argument, NULL, CLI_OPT_MODE },
	{ "policy", required_argument, NULL, CLI_OPT_POLICY },
	{ "remove", no_argument, NULL, OPT_REMOVE },
	{ "schema", required_argument, NULL, OPT_SCHEMA },
	{ "slot-size", required_argument, NULL, CLI_OPT_SLOT_SIZE },
	{ "slots", required_argument, NULL, CLI_OPT_SLOTS },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

static _Noreturn void
help(void)
{
	struct dh_config d;
	char pols[128], cks[128];

	dh_config_init(&d);
	cli_print_usage(stdout, (const char *const[]){ synopsis, synopsis_rm, synopsis_keygen, NULL });
	putchar('\n');
	printf("Create the shared-memory channel NAME (/dev/shm/dh.NAME), or remove channels.\n\n"
	       "  --slots N          number of slots (default %u, at most %u)\n"
	       "  --slot-size SIZE   payload capacity of one slot (default %uK, at most 1G)\n"
	       "  --policy POLICY    one of %s (default %s)\n"
	       "  --checksum KIND    one of %s (default %s)\n"
	       "  --key FILE         authenticate messages with a keyed BLAKE2b MAC; FILE\n"
	       "                     holds 32 bytes, mode 0600 or stricter, owned by you\n"
	       "  --schema SPEC      record schema, e.g. ts:u64;temp:f32 (slot size: the record)\n"
	       "  --meta-size SIZE   metadata zone capacity (default %u, at most 64M)\n"
	       "  --max-readers N    reader entries (default %u, at most %u)\n"
	       "  --mode OCTAL       permission bits of the channel (default %04o)\n"
	       "  --evict-after DUR  sync only: evict a reader that stalls the writer that long\n"
	       "  --force            replace an existing channel nobody uses; with --remove,\n"
	       "                     remove even while participants are alive\n"
	       "  --remove           remove the named channels\n"
	       "  --keygen FILE      create a new random key file (mode 0600) and exit\n"
	       "  -h, --help         print this help and exit\n"
	       "  -V, --version      print the version and exit\n\n"
	       "SIZE takes a K, M or G suffix (powers of 1024); DUR takes ms, s or m\n"
	       "(default s) or \"inf\". Exit status: 0 done, 1 failed, 2 usage error.\n",
	       d.slots, DH_SLOTS_MAX, d.slot_size >> 10, cli_choices(0, pols, sizeof pols), dh_policy_name(d.policy),
	       cli_choices(1, cks, sizeof cks), dh_checksum_name(d.checksum), d.meta_size, d.max_readers,
	       DH_READERS_MAX, d.mode);
	exit(cli_close_stdout());
}

static void
check_name(const char *name)
{
	char buf[64];
	int r = dh_name_check(name);

	if (r == -ENAMETOOLONG)
		cli_die(EXIT_USAGE, "%s: channel name longer than %d characters",
			cli_safe(name, buf, sizeof buf), DH_NAME_MAX);
	if (r < 0)
		cli_die(EXIT_USAGE, "%s: invalid channel name (use A-Z a-z 0-9 . _ -, no leading dot)",
			cli_safe(name, buf, sizeof buf));
}

static int
remove_channels(char **names, int n, int force)
{
	pid_t pid = 0;
	int i, r, ret = EXIT_OK;

	for (i = 0; i < n; i++)
		check_name(names[i]);
	for (i = 0; i < n; i++) {
		r = dh_block_unlink(names[i], force, &pid);
		if (r == -EBUSY)
			cli_warn("%s: channel in use by pid %ld (--force removes it anyway)", names[i],
				 (long)pid);
		else if (r == -ENOENT)
			cli_warn("%s: no such channel", names[i]);
		else if (r < 0)
			cli_warnc(r, "%s", names[i]);
		if (r < 0)
			ret = EXIT_FAIL;
	}
	return ret;
}

static int
create_channel(const char *name, const struct dh_config *cfg, int force)
{
	struct dh_layout lay;
	pid_t pid = 0;
	int r;

	check_name(name);
	r = dh_layout_compute(cfg, &lay);
	if (r == -EOVERFLOW)
		cli_die(EXIT_USAGE, "%s: %u slots of %u bytes: segment too large", name,
			cfg->slots, cfg->slot_size);
	if (r < 0)
		cli_diec(EXIT_USAGE, r, "%s: invalid geometry", name);
	r = dh_block_create(name, cfg);
	if (r == -EEXIST) {
		if (!force)
			cli_die(EXIT_FAIL, "%s: channel exists (--force replaces it, --remove removes it)", name);
		r = dh_block_unlink(name, 0, &pid);
		if (r == -EBUSY)
			cli_die(EXIT_FAIL, "%s: channel in use by pid %ld", name, (long)pid);
		if (r < 0 && r != -ENOENT)
			cli_diec(EXIT_FAIL, r, "%s: remove", name);
		r = dh_block_create(name, cfg);
		if (r == -EEXIST)
			cli_die(EXIT_FAIL, "%s: channel exists", name);
	}
	if (r < 0)
		cli_diec(EXIT_FAIL, r, "%s", name);
	return EXIT_OK;
}

int
main(int argc, char **argv)
{
	struct cli_config cc;
	struct dh_config *cfg = &cc.cfg;
	char buf[64];
	static uint8_t key[DH_KEY_BYTES];
	const char *keygen = NULL;
	int c, r, force = 0, remove = 0, creating = 0;

	cli_init(argc, argv);
	cli_config_init(&cc);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		/* --key, --schema and the geometry codes (CLI_OPT_*, above ours) */
		if (c >= OPT_KEY && c != OPT_REMOVE && c != OPT_KEYGEN)
			creating = 1;
		if (cli_config_option(c, optarg, &cc))
			continue;
		switch (c) {
		case OPT_FORCE:
			force = 1;
			break;
		case 'h':
			help();
		case OPT_KEY:
			cli_key_load(optarg, key, EXIT_FAIL);
			cfg->key = key;
			break;
		case OPT_KEYGEN:
			keygen = optarg;
			break;
		case OPT_REMOVE:
			remove = 1;
			break;
		case OPT_SCHEMA:
			cfg->schema = optarg;
			break;
		case 'V':
			cli_version();
		default:
			cli_bad_option(synopsis, c, argv);
		}
	}
	argc -= optind;
	argv += optind;

	if (keygen) {
		if (creating || remove || force || argc > 0)
			cli_usage(synopsis_keygen, "--keygen takes no other options or names");
		if ((r = dh_key_generate(keygen)) < 0)
			cli_diec(EXIT_FAIL, r, "%s", cli_safe(keygen, buf, sizeof buf));
		return EXIT_OK;
	}
	cli_config_key_conflict(&cc);
	if (remove) {
		if (creating)
			cli_usage(synopsis_rm, "--remove takes no creation options");
		if (argc < 1)
			cli_usage(synopsis_rm, "missing channel name");
		return remove_channels(argv, argc, force);
	}
	if (argc < 1)
		cli_usage(synopsis, "missing channel name");
	if (argc > 1)
		cli_usage(synopsis, "one channel name expected, got %d", argc);
	cli_config_finish(&cc);
	r = create_channel(argv[0], cfg, force);
	dh_key_wipe(key);
	return r;
}
