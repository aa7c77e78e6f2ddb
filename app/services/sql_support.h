// Small helpers shared by the classes that talk to the history database through Qt SQL.
#pragma once

#include <QSqlDatabase>
#include <QSqlError>
#include <QString>
#include <QStringList>

#include "engine/core/result.h"

namespace mwb::app {

inline Error sql_error(const QString& what, const QSqlError& error) {
    return make_error((what + ": " + error.text()).toStdString());
}

// Runs `body` in a transaction: committed when it succeeds, rolled back otherwise.
template <class T, class Body>
Result<T> in_transaction(QSqlDatabase db, const char* what, Body body) {
    if (!db.transaction()) return sql_error(QString("cannot ") + what, db.lastError());
    Result<T> result = body();
    if (!result) {
        db.rollback();
        return result;
    }
    if (!db.commit()) return sql_error(QString("cannot commit: ") + what, db.lastError());
    return result;
}

// A script cut into single statements, since QSqlQuery runs one at a time. A trigger's body (BEGIN ... END)
// holds semicolons of its own and stays whole.
inline QStringList sql_statements(const QString& script) {
    QStringList statements;
    QString current;
    for (const QString& piece : script.split(';')) {
        current += piece;
        const QString trimmed = current.trimmed();
        const bool open_trigger = trimmed.startsWith(QLatin1String("CREATE TRIGGER"), Qt::CaseInsensitive) &&
                                  !trimmed.endsWith(QLatin1String("END"), Qt::CaseInsensitive);
        if (open_trigger) {
            current += ';';
            continue;
        }
        if (!trimmed.isEmpty()) statements << trimmed;
        current.clear();
    }
    return statements;
}

}  // namespace mwb::app
