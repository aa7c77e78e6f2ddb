// A line edit with a Browse… button that picks a folder or a file (starting where the edit points, else in the
// home folder), writes the choice into the edit and reports it as editing finished.
#pragma once

#include <QString>

class QLineEdit;
class QWidget;

namespace mwb::ui {

enum class Browse { Folder, File };

QWidget* browse_field(QLineEdit* edit, Browse kind, const QString& caption, const QString& filter = {});

}  // namespace mwb::ui
