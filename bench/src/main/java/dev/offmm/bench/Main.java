package dev.offmm.bench;

import dev.offmm.bench.cli.Cli;
import dev.offmm.bench.cli.Version;
import dev.offmm.bench.fork.ForkHarness;
import dev.offmm.bench.memory.HostMemoryHarness;
import dev.offmm.bench.mmu.ReadRatioHarness;
import dev.offmm.bench.reclaim.ReclaimHarness;
import dev.offmm.bench.scale.ScaleHarness;
import dev.offmm.bench.stat.StatCommand;
import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.HelpCommand;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.PositionalParamSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * Entry point of the bench jar: {@code demo} (a short fault-scaling sweep), {@code scale} (the
 * full harness), {@code stat} (live counters), {@code reclaim} (the memory-comes-back scenarios),
 * {@code memory} (what physical memory costs the host), {@code fork} (fork and the COW storm), {@code reads} (random reads
 * through offmm against a plain segment, in alternating slices),
 * {@code jmh} (the JMH suite with JMH's own options) and {@code completion} (a bash/zsh
 * completion script generated from this command line). Usage errors are one line and exit 2.
 */
@Command(name = "offmm-bench", mixinStandardHelpOptions = true, versionProvider = Version.class,
        description = "offmm's benchmarks and harnesses.",
        footer = {"%nRun '${COMMAND-FULL-NAME} COMMAND --help' for a command's options."})
public final class Main implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    private Main() {
    }

    /** Runs the command line and exits with its status (0, 1 for a failed run, 2 for a usage error). */
    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The whole command line, configured: every subcommand, one-line usage errors. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setCommandName(Cli.rootName());
        cl.addSubcommand("demo", ScaleHarness.command(true));
        cl.addSubcommand("scale", ScaleHarness.command(false));
        cl.addSubcommand("stat", new StatCommand());
        cl.addSubcommand("reclaim", ReclaimHarness.command());
        cl.addSubcommand("memory", new HostMemoryHarness());
        cl.addSubcommand("fork", new ForkHarness());
        cl.addSubcommand("reads", new ReadRatioHarness());
        cl.addSubcommand("jmh", new CommandLine(new Jmh()).setUnmatchedOptionsArePositionalParams(true));
        cl.addSubcommand("completion", new Completion());
        cl.addSubcommand("help", new HelpCommand());
        return Cli.configure(cl);
    }

    /** Without a command: the usage, as {@code help}. */
    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getOut());
        return 0;
    }

    /**
     * {@code jmh}: every argument goes to JMH untouched (JMH's {@code -h} is JMH's help); only the
     * long {@code --help} and {@code --version} are this command's own.
     */
    @Command(name = "jmh", versionProvider = Version.class,
            description = {"The JMH suite; every argument goes to JMH untouched.",
                "e.g. ${COMMAND-FULL-NAME} -f 1 -wi 3 -i 5 'Fault.*' (org.openjdk.jmh.Main). JMH's own options:"
                        + " ${COMMAND-FULL-NAME} -h; the benchmarks: ${COMMAND-FULL-NAME} -l."})
    static final class Jmh implements Callable<Integer> {
        @Option(names = "--help", usageHelp = true, description = "Show this help message and exit.")
        private boolean help;

        @Option(names = "--version", versionHelp = true, description = "Print version information and exit.")
        private boolean version;

        @Parameters(arity = "0..*", paramLabel = "JMH-ARG", description = "JMH's arguments")
        private List<String> args = new ArrayList<>();

        @Override
        public Integer call() throws Exception {
            org.openjdk.jmh.Main.main(args.toArray(String[]::new));
            return 0;
        }
    }

    /** {@code completion}: the bash (and zsh, through bashcompinit) completion script of this command line. */
    @Command(name = "completion", mixinStandardHelpOptions = true, versionProvider = Version.class,
            description = {"Prints a bash/zsh completion script generated from this command line.",
                "zsh: run 'autoload -U bashcompinit && bashcompinit' first.",
                "Install: ${COMMAND-FULL-NAME} > ~/.local/share/bash-completion/completions/${ROOT-COMMAND-NAME}",
                "or for this shell: source <(${COMMAND-FULL-NAME})"})
    static final class Completion implements Callable<Integer> {
        @Spec
        private CommandSpec spec;

        @Override
        public Integer call() {
            String name = spec.root().name();
            CommandLine model = commandLine();
            model.setCommandName(name);
            if (name.equals("offmm")) {
                launcherCommands(model);
            }
            spec.commandLine().getOut().print(AutoComplete.bash(name, model));
            spec.commandLine().getOut().flush();
            return 0;
        }

        /** The launcher's own commands (not the jar's), so that {@code ./offmm <TAB>} lists them too. */
        private static void launcherCommands(CommandLine model) {
            model.addSubcommand("test", CommandSpec.create());
            model.addSubcommand("build", CommandSpec.create());
            model.addSubcommand("java", CommandSpec.create());
            model.addSubcommand("install", CommandSpec.create());
            model.addSubcommand("jdk", CommandSpec.create());
            CommandSpec example = CommandSpec.create();
            example.addPositional(PositionalParamSpec.builder().paramLabel("EXAMPLE").arity("0..1").index("0")
                    .completionCandidates(List.of("arena", "arena-rss", "cache", "cache-bench", "snapshot")).build());
            model.addSubcommand("example", example);
        }
    }
}
