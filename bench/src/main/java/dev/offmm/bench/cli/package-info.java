/**
 * The command line shared by every harness: picocli configuration, one-line usage errors with
 * exit status 2, range-checked option converters, {@code --version} and shell completion.
 */
package dev.offmm.bench.cli;
