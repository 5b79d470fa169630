package dev.offmm.bench.cli;

import picocli.CommandLine.IVersionProvider;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/**
 * {@code --version}: the project version (from {@code offmm-bench.properties}, which the build
 * filters, or else the jar manifest), the JDK and the host.
 */
public final class Version implements IVersionProvider {
    /** For picocli. */
    public Version() {
    }

    /** The Maven project version, or {@code "unknown"} outside a build. */
    public static String projectVersion() {
        try (InputStream in = Version.class.getResourceAsStream("/offmm-bench.properties")) {
            if (in != null) {
                Properties p = new Properties();
                p.load(in);
                String v = p.getProperty("version", "");
                if (!v.isEmpty() && !v.startsWith("${")) {
                    return v;
                }
            }
        } catch (IOException e) {
            // Fall back to the manifest.
        }
        String v = Version.class.getPackage().getImplementationVersion();
        return v == null ? "unknown" : v;
    }

    @Override
    public String[] getVersion() {
        return new String[] {
            "${COMMAND-FULL-NAME} " + projectVersion(),
            "JDK " + Runtime.version() + " (" + System.getProperty("java.vendor") + "), " + System.getProperty("os.name")
                    + " " + System.getProperty("os.version") + " " + System.getProperty("os.arch"),
        };
    }
}
