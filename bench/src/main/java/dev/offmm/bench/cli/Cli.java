package dev.offmm.bench.cli;

import picocli.CommandLine;
import picocli.CommandLine.Help.Column;
import picocli.CommandLine.Help.TextTable;
import picocli.CommandLine.IParameterExceptionHandler;
import picocli.CommandLine.Model.UsageMessageSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.UnmatchedArgumentException;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * How every command of the bench jar parses: usage errors are one line on stderr naming the
 * command, the option and the accepted values, with exit status 2 (never a stack trace);
 * {@code @file} arguments are not expanded (JMH's arguments pass through untouched); enum values
 * match case-insensitively.
 */
public final class Cli {
    /** Exit status of a usage error, as GNU tools and picocli use. */
    public static final int USAGE = 2;

    private Cli() {
    }

    /**
     * The root command's name: {@code offmm} when run through the launcher (which sets
     * {@code -Doffmm.command=offmm}), else {@code offmm-bench}.
     */
    public static String rootName() {
        return System.getProperty("offmm.command", "offmm-bench");
    }

    /** Applies the shared parser settings to {@code cl} and every subcommand added so far. */
    public static CommandLine configure(CommandLine cl) {
        return cl.setParameterExceptionHandler(new OneLineErrors())
                .setExpandAtFiles(false)
                .setCaseInsensitiveEnumValuesAllowed(true)
                .setUsageHelpAutoWidth(true);
    }

    /**
     * Replaces the footer of {@code cl}'s usage with {@code heading} and a two-column table of
     * {@code rows} (name, description), the descriptions wrapped in their column.
     */
    public static void footerTable(CommandLine cl, String heading, String[][] rows) {
        cl.getHelpSectionMap().put(UsageMessageSpec.SECTION_KEY_FOOTER, help -> {
            int width = help.commandSpec().usageMessage().width();
            int first = 2 + Arrays.stream(rows).mapToInt(r -> r[0].length()).max().orElse(0) + 2;
            TextTable table = TextTable.forColumns(help.colorScheme(), new Column(first, 2, Column.Overflow.SPAN),
                    new Column(Math.max(20, width - first), 0, Column.Overflow.WRAP));
            for (String[] r : rows) {
                table.addRowValues(r[0], r[1]);
            }
            return String.format("%n%s%n", heading) + table;
        });
    }

    /** Prints {@code <command>: <what is wrong>} and returns the usage exit status. */
    static final class OneLineErrors implements IParameterExceptionHandler {
        @Override
        public int handleParseException(ParameterException ex, String[] args) {
            CommandLine cmd = ex.getCommandLine();
            PrintWriter err = cmd.getErr();
            err.println(cmd.getCommandSpec().qualifiedName() + ": " + message(ex, cmd));
            err.flush();
            return cmd.getExitCodeExceptionMapper() != null ? cmd.getExitCodeExceptionMapper().getExitCode(ex) : USAGE;
        }
    }

    /** One line: picocli's message, decapitalized, with unknown commands and options said as such. */
    static String message(ParameterException ex, CommandLine cmd) {
        String help = " (see '" + cmd.getCommandSpec().qualifiedName() + " --help')";
        if (ex instanceof UnmatchedArgumentException u && !u.getUnmatched().isEmpty()) {
            String arg = u.getUnmatched().getFirst();
            if (!cmd.getSubcommands().isEmpty() && !arg.startsWith("-")) {
                return "unknown command '" + arg + "' (expected " + String.join(", ", cmd.getSubcommands().keySet()) + ")";
            }
            List<String> suggestions = u.getSuggestions();
            if (arg.startsWith("-")) {
                return "unknown option '" + arg + "'" + (suggestions.isEmpty() ? help
                        : " (did you mean " + String.join(" or ", suggestions) + "?)");
            }
            return "unexpected argument '" + arg + "'" + help;
        }
        String m = String.valueOf(ex.getMessage()).replace('\n', ' ').strip();
        if (!m.isEmpty() && Character.isUpperCase(m.charAt(0)) && (m.length() == 1 || Character.isLowerCase(m.charAt(1)))) {
            m = m.substring(0, 1).toLowerCase(Locale.ROOT) + m.substring(1);
        }
        return m;
    }
}
