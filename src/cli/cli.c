/* SPDX-License-Identifier: MIT
 *
 * The quiver command's entry: subcommand dispatch, help and version.
 *
 * Every subcommand's help lives here, in one table, so that `quiver CMD
 * --help`, `quiver help CMD` and the man page (`quiver help --man`) print the
 * same text. Help is printed offline: no server is ever contacted for it.
 */
#include "cli.h"

#include "../util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cmd_help {
    const char *name;
    const char *summary; /* one line, for the overview */
    const char *text;    /* usage and options; NULL for serve (its text is in serve.c) */
    bool client;         /* talks to a server: gets the client options footer */
};

static const char client_footer[] =
    "\n"
    "Options for the commands that talk to a server:\n"
    "  --url URL               the server (default: $QUIVER_URL, else http://127.0.0.1:8000);\n"
    "                          a trailing / is ignored\n"
    "  --token TOKEN           bearer token (default: $QUIVER_TOKEN)\n"
    "  -h, --help              print this help; nothing is sent\n"
    "\n"
    "Environment:\n"
    "  QUIVER_URL              the server when --url is not given\n"
    "  QUIVER_TOKEN            the bearer token when --token is not given\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  the server refused (its error message goes to stderr)\n"
    "  2  bad usage: an unknown command or flag, a missing or malformed value (nothing sent)\n"
    "  3  the server could not be reached\n";

static const struct cmd_help commands[] = {
    {"serve", "serve every model version in a repository", NULL, false},
    {"models", "list models and versions with their states",
     "usage: quiver models\n"
     "\n"
     "Prints the repository index: every model and version with its state\n"
     "(GET /v2/repository/index).\n",
     true},
    {"route", "show, set or clear a model's route",
     "usage: quiver route show MODEL\n"
     "       quiver route set MODEL --file FILE\n"
     "       quiver route set MODEL --weights LABEL=W,... [--policy P] [--target T]\n"
     "       quiver route set MODEL --policy P [--target T]\n"
     "       quiver route clear MODEL\n"
     "\n"
     "  show                    print the route document (GET /v2/models/MODEL/route)\n"
     "  set                     replace the route: with --file, the document in FILE as is;\n"
     "                          otherwise the current document with the given fields changed\n"
     "  clear                   remove the route; the model's default policy applies again\n"
     "\n"
     "Options of route set:\n"
     "  --file FILE             a whole route document (JSON, at most 1 MiB)\n"
     "  --weights L=W,...       integer weights per label or version, e.g. stable=90,canary=10\n"
     "                          (sets the policy to weighted unless it is sticky)\n"
     "  --policy P              default, pinned, weighted, sticky, bandit, ...\n"
     "                          (see docs/routing.md)\n"
     "  --target T              the label or version a pinned route sends to\n"
     "\n"
     "Example:\n"
     "  quiver route set fraud --weights stable=90,canary=10\n",
     true},
    {"label", "set or delete a version label",
     "usage: quiver label set MODEL LABEL VERSION\n"
     "       quiver label delete MODEL LABEL\n"
     "\n"
     "  set                     LABEL names VERSION (which must be READY)\n"
     "  delete                  remove LABEL\n"
     "\n"
     "Example:\n"
     "  quiver label set fraud canary 2\n",
     true},
    {"promote", "make a label's version the stable one",
     "usage: quiver promote MODEL [LABEL]\n"
     "\n"
     "stable := the version LABEL names (default: canary); LABEL is removed, shadow\n"
     "copies to it are dropped, and all the weight goes to stable.\n",
     true},
    {"rollback", "restore the previous route",
     "usage: quiver rollback MODEL\n"
     "\n"
     "Restores the route in force before the last change (from the audit log).\n",
     true},
    {"events", "print the audit log",
     "usage: quiver events [MODEL] [--limit N] [--since TIME]\n"
     "\n"
     "Prints one line per event, oldest first: time, model, who, what, old -> new.\n"
     "Without MODEL, the events of every model.\n"
     "\n"
     "Options:\n"
     "  --limit N               the newest N events only (1 to 100000)\n"
     "  --since TIME            events at or after TIME: ISO 8601 UTC\n"
     "                          (2026-01-31T12:00:00Z), milliseconds since the epoch, or\n"
     "                          a duration ago (30s, 10m, 2h, 7d)\n",
     true},
    {"rollout", "start, watch or abort a progressive rollout",
     "usage: quiver rollout start MODEL --canary VERSION [--steps P,...]\n"
     "                        [--step-seconds N] [--min-requests N]\n"
     "       quiver rollout status MODEL\n"
     "       quiver rollout abort MODEL\n"
     "\n"
     "  start                   send the canary the given percentages in turn, promoting it\n"
     "                          after the last step or rolling back when a guard fails\n"
     "                          (see docs/control.md)\n"
     "  status                  print the rollout's state\n"
     "  abort                   stop it and restore the route it started from\n"
     "\n"
     "Options of rollout start:\n"
     "  --canary VERSION        the version to roll out (a positive integer)\n"
     "  --steps P,...           canary percentages, 1 to 100 (default 5,25,50,100)\n"
     "  --step-seconds N        the shortest time a step lasts, 0 to 604800 (default 60)\n"
     "  --min-requests N        requests the canary must answer per step, at least 1\n"
     "\n"
     "Example:\n"
     "  quiver rollout start fraud --canary 2 --steps 10,50,100 --step-seconds 60\n",
     true},
    {"model", "check a model artifact the way the server does before loading it",
     "usage: quiver model check [--max-memory-mb N] [--timeout S] [--expect-sha256 HEX] PATH\n"
     "\n"
     "Loads the artifact and runs one prediction, as the server does in a child process\n"
     "before it loads an XGBoost version. Prints \"ok: ...\" and exits 0, or prints\n"
     "\"error: REASON\" and exits 1 (2 for bad usage).\n"
     "\n"
     "Options:\n"
     "  --max-memory-mb N       address-space limit applied to itself before loading\n"
     "  --timeout S             give up after S seconds\n"
     "  --expect-sha256 HEX     refuse an artifact whose SHA-256 differs\n"
     "\n"
     "Example:\n"
     "  quiver model check examples/models/fraud/2/model.ubj\n",
     false},
    {"version", "print the version",
     "usage: quiver version\n"
     "\n"
     "Prints the version of quiver (also: quiver --version).\n",
     false},
    {"help", "print the help of a command",
     "usage: quiver help [COMMAND]\n"
     "       quiver help --man\n"
     "\n"
     "Prints the full help of COMMAND (the same as quiver COMMAND --help), or the\n"
     "overview. --man prints the whole manual as a man page (roff) for quiver(1).\n",
     false},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cmd_help *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_overview(FILE *f)
{
    fputs("usage: quiver <command> [options]\n"
          "       quiver help <command>     the full help of one command\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-22s  %s\n", commands[i].name, commands[i].summary);
    fputs(client_footer, f);
}

int qv_cli_help(const char *cmd, FILE *f)
{
    const struct cmd_help *h;

    if (cmd == NULL) {
        print_overview(f);
        return 0;
    }
    h = find_command(cmd);
    if (h == NULL)
        return -1;
    fputs(h->text ? h->text : qv_cli_serve_usage(), f);
    if (h->client)
        fputs(client_footer, f);
    return 0;
}

int qv_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

/* ---- The man page ----
 * The help texts, preformatted, in roff. A line is escaped so that roff
 * prints it as is: backslashes doubled, a leading '.' or '\'' protected. */
static void roff_text(const char *s, FILE *f)
{
    bool bol = true;

    for (; *s; s++) {
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", f);
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
        bol = *s == '\n';
    }
}

static void print_man(FILE *f)
{
    fputs(".TH QUIVER 1 \"\" \"quiver " QV_VERSION "\" \"User Commands\"\n"
          ".SH NAME\n"
          "quiver \\- serve machine-learning models and govern their versions\n"
          ".SH SYNOPSIS\n"
          ".B quiver\n"
          ".I command\n"
          "[\\fIoptions\\fR]\n"
          ".SH DESCRIPTION\n"
          "\\fBquiver serve\\fR serves every model version of a repository over HTTP (KServe v2\n"
          "and TF Serving REST). The other commands talk to a running server: they show and\n"
          "change routes, labels and rollouts, and print the audit log.\n"
          ".PP\n"
          ".nf\n",
          f);
    {
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        if (m) {
            print_overview(m);
            fclose(m);
            roff_text(buf, f);
            free(buf);
        }
    }
    fputs(".fi\n.SH COMMANDS\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(f, ".SS quiver %s\n%s.\n.PP\n.nf\n", commands[i].name, commands[i].summary);
        roff_text(commands[i].text ? commands[i].text : qv_cli_serve_usage(), f);
        fputs(".fi\n", f);
    }
    fputs(".SH ENVIRONMENT\n"
          ".TP\n.B QUIVER_URL\nthe server when \\-\\-url is not given\n"
          ".TP\n.B QUIVER_TOKEN\nthe bearer token when \\-\\-token is not given\n"
          ".SH EXIT STATUS\n"
          ".TP\n.B 0\nsuccess\n"
          ".TP\n.B 1\nthe server refused (its error message goes to standard error)\n"
          ".TP\n.B 2\nbad usage: nothing was sent\n"
          ".TP\n.B 3\nthe server could not be reached\n"
          ".SH FILES\n"
          ".TP\n.I /etc/default/quiver\n"
          "the repository and data directories of the systemd service (quiver.service)\n"
          ".SH SEE ALSO\n"
          "The documentation in /usr/share/doc/quiver (or PREFIX/share/doc/quiver).\n",
          f);
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 3) {
        print_overview(stdout);
        return QV_EXIT_OK;
    }
    if (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0) {
        qv_cli_help("help", stdout);
        return QV_EXIT_OK;
    }
    if (strcmp(argv[2], "--man") == 0) {
        print_man(stdout);
        return QV_EXIT_OK;
    }
    if (qv_cli_help(argv[2], stdout) != 0) {
        fprintf(stderr, "quiver: unknown command \"%s\" (see quiver help)\n", argv[2]);
        return QV_EXIT_USAGE;
    }
    return QV_EXIT_OK;
}

int qv_cli_main(int argc, char **argv)
{
    if (argc < 2) {
        print_overview(stderr);
        return QV_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_overview(stdout);
        return QV_EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0)
        return cmd_help(argc, argv);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        if (qv_cli_wants_help(argc, argv))
            return qv_cli_help("version", stdout), QV_EXIT_OK;
        printf("quiver %s\n", QV_VERSION);
        return QV_EXIT_OK;
    }
    if (strcmp(argv[1], "serve") == 0) {
        if (qv_cli_wants_help(argc, argv)) {
            qv_cli_help("serve", stdout);
            return QV_EXIT_OK;
        }
        return qv_cli_serve(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "model") == 0) {
        if (qv_cli_wants_help(argc, argv)) {
            qv_cli_help("model", stdout);
            return QV_EXIT_OK;
        }
        return qv_cli_model(argc - 1, argv + 1);
    }
    return qv_cli_client(argc - 1, argv + 1);
}
