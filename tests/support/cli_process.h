// Running the `mwb` command line as a user does, for the suites that check its output (MWB_CLI names it).
#pragma once

#include <QProcess>
#include <QString>
#include <QStringList>
#include <QtGlobal>

namespace mwb::testing {

struct CliRun {
    int exit_code = -1;
    QString out, err;
};

inline CliRun run_mwb(const QStringList& arguments, int timeout_ms = 300000) {
    QProcess process;
    process.start(QStringLiteral(MWB_CLI), arguments);
    if (!process.waitForFinished(timeout_ms)) qFatal("mwb did not finish");
    return {process.exitCode(), QString::fromUtf8(process.readAllStandardOutput()), QString::fromUtf8(process.readAllStandardError())};
}

}  // namespace mwb::testing
