package dev.offmm.bench;

import dev.offmm.bench.cli.Version;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The bench jar's command line, in process: help, version, usage errors (one line, exit 2), defaults. */
class CliTest {
    /** What one run printed. */
    private record Run(int status, String out, String err) {
    }

    private static Run run(String... args) {
        CommandLine cl = Main.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int status = cl.execute(args);
        return new Run(status, out.toString(), err.toString());
    }

    /** A usage error: exit 2, exactly one line on stderr naming the command, nothing on stdout, no stack trace. */
    private static String usageError(String... args) {
        Run r = run(args);
        assertEquals(2, r.status(), () -> String.join(" ", args) + ": " + r);
        assertEquals("", r.out(), "a usage error prints nothing on stdout");
        assertEquals(1, r.err().lines().count(), () -> "one line: " + r.err());
        assertFalse(r.err().contains("Exception") || r.err().contains("\tat "), r::err);
        assertTrue(r.err().startsWith("offmm-bench " + args[0] + ": "), r::err);
        return r.err().strip();
    }

    @ParameterizedTest
    @ValueSource(strings = {"demo", "scale", "stat", "reclaim", "memory", "fork", "reads", "jmh", "completion"})
    void everyCommandHasHelp(String cmd) {
        Run r = run(cmd, "--help");
        assertEquals(0, r.status(), r::err);
        assertTrue(r.out().startsWith("Usage: offmm-bench " + cmd), r::out);
        assertTrue(r.out().contains("--version"), r::out);
        assertEquals("", r.err());
    }

    @ParameterizedTest
    @ValueSource(strings = {"demo", "scale", "stat", "reclaim", "memory", "fork", "reads", "jmh", "completion"})
    void everyCommandHasVersion(String cmd) {
        String v = Version.projectVersion();
        assertNotEquals("unknown", v, "the filtered offmm-bench.properties is on the class path");
        Run r = run(cmd, "--version");
        assertEquals(0, r.status(), r::err);
        assertTrue(r.out().startsWith("offmm-bench " + cmd + " " + v + System.lineSeparator()), r::out);
        assertTrue(r.out().contains("JDK " + Runtime.version()), r::out);
    }

    @Test
    void rootHelpListsEveryCommandAndVersionIsTheProjects() {
        Run r = run("--help");
        assertEquals(0, r.status());
        for (String cmd : List.of("demo", "scale", "stat", "reclaim", "memory", "fork", "reads", "jmh", "completion", "help")) {
            assertTrue(r.out().contains("\n  " + cmd + " "), () -> cmd + " in " + r.out());
        }
        Run none = run();
        assertEquals(0, none.status());
        assertEquals(r.out(), none.out(), "no command prints the usage");
        Run v = run("-V");
        assertTrue(v.out().startsWith("offmm-bench " + Version.projectVersion()), v::out);
    }

    @ParameterizedTest
    @CsvSource({
        "scale, --seconds", "demo, --seconds", "scale, --warmup", "scale, --repeat", "stat, --interval",
        "stat, --count", "reclaim, --rounds", "memory, --repeat", "memory, --gib", "memory, --delay-ms",
        "fork, --repeat", "fork, --mib",
    })
    void notANumberNamesTheOptionAndTheAcceptedValues(String cmd, String option) {
        String e = usageError(cmd, option, "abc");
        assertTrue(e.contains("'" + option + "'") && e.contains("'abc'") && e.contains("(expected "), e);
    }

    @Test
    void negativeOrZeroThreadsAreUsageErrors() {
        String e = usageError("scale", "--threads", "-1");
        assertTrue(e.contains("'--threads'") && e.contains("'-1'") && e.contains("1..256"), e);
        e = usageError("demo", "--threads=1,0");
        assertTrue(e.contains("'0' is out of range (expected 1..256)"), e);
        usageError("scale", "--threads", "257");
    }

    @Test
    void outOfRangeValues() {
        assertTrue(usageError("scale", "--seconds", "0").contains("> 0"));
        assertTrue(usageError("scale", "--seconds", "NaN").contains("out of range"));
        assertTrue(usageError("scale", "--warmup", "-1").contains("0..3600"));
        assertTrue(usageError("scale", "--repeat", "101").contains("1..100"));
        assertTrue(usageError("fork", "--mib", "1").contains("2..8192"));
        assertTrue(usageError("memory", "--gib", "17").contains("1..16"));
        assertTrue(usageError("stat", "--interval", "-0.5").contains("out of range"));
        assertTrue(usageError("reclaim", "--rounds", "0").contains("1..1000000"));
    }

    @Test
    void badNamesAndUnknownOptions() {
        assertTrue(usageError("scale", "--modes", "SINGLE,FOO").contains("expected SINGLE, SPLIT_PTE"));
        assertTrue(usageError("scale", "--workloads", "pf9").contains("expected pf1, pf4"));
        assertTrue(usageError("memory", "--discard", "maybe").contains("DONTNEED, FREE"));
        assertTrue(usageError("reclaim", "parked", "bogus").contains("unknown scenario 'bogus'"));
        assertTrue(usageError("scale", "--secnds", "3").contains("did you mean --seconds?"));
        assertTrue(usageError("scale", "--seconds").contains("missing"));
        Run r = run("bogus");
        assertEquals(2, r.status());
        assertEquals("offmm-bench: unknown command 'bogus' (expected demo, scale, stat, reclaim, memory, fork, reads, jmh,"
                + " completion, help)", r.err().strip());
    }

    @Test
    void defaultsAreTheHarnessesOwn() {
        CommandLine cl = Main.commandLine();
        CommandLine demo = cl.getSubcommands().get("demo");
        cl.parseArgs("demo");
        assertEquals("[PF1, DISJOINT]", value(demo, "--workloads"));
        assertEquals("[1, 2]", value(demo, "--threads"));
        assertEquals(2.0, (double) demo.getCommandSpec().findOption("--seconds").getValue());
        assertEquals(1.0, (double) demo.getCommandSpec().findOption("--warmup").getValue());
        CommandLine scale = cl.getSubcommands().get("scale");
        cl.parseArgs("scale");
        int n = Runtime.getRuntime().availableProcessors();
        assertEquals(n > 1 ? List.of(1, n, 4 * n) : List.of(1, 4 * n), scale.getCommandSpec().findOption("--threads").getValue());
        assertEquals(3.0, (double) scale.getCommandSpec().findOption("--seconds").getValue());
        assertEquals("[PF1, DISJOINT, SHARED_TABLE]", value(scale, "--workloads"));
        assertEquals(5, ((List<?>) scale.getCommandSpec().findOption("--modes").getValue()).size());
        assertEquals("bench/results", value(scale, "--out"));
        // A given list replaces the default, it does not add to it.
        cl.parseArgs("scale", "--threads", "3,5", "--threads", "7", "--seconds=0.5");
        assertEquals("[3, 5, 7]", value(scale, "--threads"));
        assertEquals(0.5, (double) scale.getCommandSpec().findOption("--seconds").getValue());
        CommandLine fork = cl.getSubcommands().get("fork");
        cl.parseArgs("fork");
        assertEquals("7", value(fork, "--repeat"));
        assertEquals("1024", value(fork, "--mib"));
        CommandLine memory = cl.getSubcommands().get("memory");
        cl.parseArgs("memory", "--discard", "free");
        assertEquals("5", value(memory, "--repeat"));
        assertEquals("FREE", value(memory, "--discard"));
        CommandLine reclaim = cl.getSubcommands().get("reclaim");
        cl.parseArgs("reclaim");
        assertEquals("1000", value(reclaim, "--rounds"));
    }

    private static String value(CommandLine cl, String option) {
        return String.valueOf((Object) cl.getCommandSpec().findOption(option).getValue());
    }

    @Test
    void readsPrintsOnePairedRatioPerCase() {
        Run r = run("reads", "--sizes", "256k,4m", "--distributions", "uniform", "--pairs", "3", "--warmup-pairs", "1",
                "--slice-ms", "20", "--threads", "2", "--thp");
        assertEquals(0, r.status(), r::err);
        List<String> rows = r.out().lines().filter(l -> l.contains(" uniform ")).toList();
        assertEquals(2, rows.size(), r::out);
        assertTrue(rows.get(0).startsWith("256 KiB") && rows.get(0).contains(" false "), r::out);
        assertTrue(rows.get(1).startsWith("4 MiB") && rows.get(1).contains(" true "), "--thp for 2 MiB or more: " + r.out());
        for (String row : rows) {
            String[] f = row.trim().split("\\s+");      // 256 KiB uniform false offmm plain ratio min-max
            double offmm = Double.parseDouble(f[4]);
            double plain = Double.parseDouble(f[5]);
            double ratio = Double.parseDouble(f[6]);
            // Only that every figure is there: three 20 ms pairs in a cold JVM say nothing about the ratio.
            assertTrue(offmm > 0 && plain > 0 && ratio > 0 && Double.isFinite(ratio), row);
        }
        assertTrue(usageError("reads", "--sizes", "3k").contains("4k..64g"));
        assertTrue(usageError("reads", "--sizes", "lots").contains("not a size"));
        assertTrue(usageError("reads", "--distributions", "normal").contains("uniform, zipf"));
        assertTrue(usageError("reads", "--pairs", "0").contains("1..10000"));
    }

    @Test
    void jmhGetsItsArgumentsUntouched() {
        CommandLine cl = Main.commandLine();
        CommandLine jmh = cl.getSubcommands().get("jmh");
        List<String> args = List.of("-f", "1", "-wi", "3", "-h", "-p", "mode=SINGLE", "--foo", ".*Fault.*", "@x");
        List<String> line = new ArrayList<>(List.of("jmh"));
        line.addAll(args);
        cl.parseArgs(line.toArray(String[]::new));
        assertEquals(args, jmh.getCommandSpec().positionalParameters().getFirst().getValue());
    }

    @Test
    void completionIsGeneratedFromTheModel() {
        Run r = run("completion");
        assertEquals(0, r.status(), r::err);
        assertTrue(r.out().contains("complete -F _complete_offmm-bench") || r.out().contains("_complete_offmm-bench"), r::out);
        for (String s : List.of("--seconds", "--workloads", "shared-table", "SPLIT_PTE_PMD", "parked", "DONTNEED", "--mib")) {
            assertTrue(r.out().contains(s), s);
        }
        assertFalse(r.out().contains("arena"), "the launcher's own commands only when named offmm");
    }
}
