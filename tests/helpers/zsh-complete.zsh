# zsh-complete.zsh: what zsh completes for command lines. See LICENSE.
#
#   zsh -f tests/helpers/zsh-complete.zsh FPATH_DIR 'dh-create --pol' ...
#
# Starts one interactive zsh on a pseudo-terminal with compinit and the
# completion functions in FPATH_DIR; for each LINE it types the line and a
# TAB and prints "== LINE", then every match offered, one per line, sorted.
# Exit status 2 if zsh/zpty is missing, 3 if the shell stopped answering.
zmodload zsh/zpty || exit 2
dir=$1
shift
# compinit -D: no dump file (never -d /dev/null: run as root, compinit
# replaces the dump file, and /dev/null with it); HOME and ZDOTDIR in a
# private directory in case anything is still written
tmp=$(mktemp -d) || exit 2
trap 'rm -rf -- "$tmp"' EXIT
export HOME=$tmp ZDOTDIR=$tmp
# Under make asan the completions run instrumented commands (dh-create
# --help): LeakSanitizer's exit-time check stops the process with a
# ptrace tracer, which stalls for seconds inside this pseudo-terminal's
# foreground job (1 run in 3).  Leaks are checked by every other suite.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=(${(q)dir} \$fpath); autoload -Uz compinit; compinit -u -D"
# record every match that reaches compadd (except compadd's internal queries)
zpty -w z 'compadd() { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi;
	local -a __h; local __x; builtin compadd -A __h "$@"; (( $#__h )) || return 1;
	for __x in $__h; do print -r -- "<<$__x>>"; done; builtin compadd "$@"; }'
# TAB completes, then says so: the next line is typed only after that (zle
# may skip a completion while typed-ahead input is pending)
zpty -w z '_dh_tab() { zle complete-word; print -rn -- "@@do""ne@@"; }; zle -N _dh_tab; bindkey "^I" _dh_tab'

# await MARK: read the shell's output up to MARK into $out
await() {
	local chunk start=$SECONDS
	out=
	while [[ $out != *$1* ]]; do
		if zpty -r -t z chunk 2>/dev/null; then
			out+=$chunk
		elif (( SECONDS - start > 10 )); then
			zpty -d z
			exit 3
		else
			sleep 0.01
		fi
	done
}

# the markers are spelt apart in what is typed: the terminal echoes input,
# and only the shell's output may end a wait
zpty -w z "print -- ---re''ady"
await ---ready
i=0
for line; do
	(( i++ ))
	zpty -w -n z "$line"$'\t'
	await @@done@@
	print -r -- "== $line"
	print -r -- "$out" | grep -ao '<<[^>]*>>' | sed 's/^<<//; s/>>$//' | sort -u
	zpty -w -n z $'\C-u'
done
zpty -d z
