; Inno Setup 6 script for Mailer: installs the PyInstaller one-folder build
; (build\pyinstaller\dist\mailer-gui, made by packaging\pyinstaller\mailer-gui.spec),
; adds a Start menu entry, offers Mailer as the handler of mailto: links, and
; writes an uninstaller. packaging\windows\build-windows.ps1 builds everything:
;
;   iscc /DAppVersion=0.1.0 packaging\windows\mailer-gui.iss
;
; Installs per user without administrator rights by default (the setup offers
; "for all users" too). mailto: registration, the way Windows 10 and 11 expect it:
; a ProgID (MailerGui.mailto) with the open command, Capabilities with a
; URLAssociations entry, and RegisteredApplications pointing at them, so Mailer
; appears in Settings > Apps > Default apps, where the person chooses it. Where no
; choice was ever made, Software\Classes\mailto decides: the "mailto" task
; writes it too, and the uninstaller removes it only while it still opens Mailer.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\build\pyinstaller\dist\mailer-gui"
#endif
#define AppName "Mailer"
#define AppExe "mailer-gui.exe"
#define AppId "io.github.mailer_gui.MailerGui"
#define ProgId "MailerGui.mailto"
#define CapabilitiesKey "Software\Mailer\Capabilities"

[Setup]
AppId={{61B864EF-5E62-4FA2-9010-EEAA5ACFA6B3}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=The Mailer developers
AppPublisherURL=https://github.com/mailer-gui/mailer-gui
AppSupportURL=https://github.com/mailer-gui/mailer-gui/issues
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\..\dist
OutputBaseFilename=mailer-gui-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\mailer-gui.ico
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
LicenseFile=..\..\LICENSE
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
; Windows refreshes its association cache after install and uninstall.
ChangesAssociations=yes
CloseApplications=yes

[Tasks]
Name: "mailto"; Description: "Open mailto: links with Mailer"; GroupDescription: "Email links:"
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; AppUserModelID: "{#AppId}"; Comment: "Write and send mail"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; AppUserModelID: "{#AppId}"; Tasks: desktopicon

[Registry]
; The ProgID that opens a mailto: URL with Mailer.
Root: HKA; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: ""; ValueData: "URL:MailTo Protocol"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\{#ProgId}"; ValueType: string; ValueName: "URL Protocol"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\{#ProgId}\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"",0"
Root: HKA; Subkey: "Software\Classes\{#ProgId}\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""
; What Mailer can handle, for Settings > Default apps.
Root: HKA; Subkey: "{#CapabilitiesKey}"; ValueType: string; ValueName: "ApplicationName"; ValueData: "{#AppName}"; Flags: uninsdeletekey
Root: HKA; Subkey: "{#CapabilitiesKey}"; ValueType: string; ValueName: "ApplicationDescription"; ValueData: "Write mail and send it over SMTP, seeing what the server said"
Root: HKA; Subkey: "{#CapabilitiesKey}"; ValueType: string; ValueName: "ApplicationIcon"; ValueData: """{app}\{#AppExe}"",0"
Root: HKA; Subkey: "{#CapabilitiesKey}\URLAssociations"; ValueType: string; ValueName: "mailto"; ValueData: "{#ProgId}"
Root: HKA; Subkey: "Software\RegisteredApplications"; ValueType: string; ValueName: "{#AppName}"; ValueData: "{#CapabilitiesKey}"; Flags: uninsdeletevalue
; The handler where nobody chose one in Settings (removed by the [Code] below).
Root: HKA; Subkey: "Software\Classes\mailto"; ValueType: string; ValueName: ""; ValueData: "URL:MailTo Protocol"; Tasks: mailto
Root: HKA; Subkey: "Software\Classes\mailto"; ValueType: string; ValueName: "URL Protocol"; ValueData: ""; Tasks: mailto
Root: HKA; Subkey: "Software\Classes\mailto\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"",0"; Tasks: mailto
Root: HKA; Subkey: "Software\Classes\mailto\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\{#AppExe}"" ""%1"""; Tasks: mailto

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
; Windows lets only the person choose the default: open the page where Mailer is listed.
Filename: "ms-settings:defaultapps?registeredApp{code:SettingsScope}={#AppName}"; Description: "Choose Mailer for email links in Settings"; Flags: shellexec nowait postinstall skipifsilent unchecked; Tasks: mailto

[Code]
function RegistryRoot: Integer;
begin
  if IsAdminInstallMode then
    Result := HKEY_LOCAL_MACHINE
  else
    Result := HKEY_CURRENT_USER;
end;

function SettingsScope(Param: String): String;
begin
  if IsAdminInstallMode then
    Result := 'Machine'
  else
    Result := 'User';
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Command: String;
begin
  if CurUninstallStep <> usUninstall then
    Exit;
  { Software\Classes\mailto belongs to whoever set it last: remove it only while it opens this Mailer. }
  if RegQueryStringValue(RegistryRoot, 'Software\Classes\mailto\shell\open\command', '', Command) then
    if Pos(Lowercase(ExpandConstant('{app}\{#AppExe}')), Lowercase(Command)) > 0 then
      RegDeleteKeyIncludingSubkeys(RegistryRoot, 'Software\Classes\mailto');
end;
