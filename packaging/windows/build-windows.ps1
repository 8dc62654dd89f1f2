# Build the Windows installer: the PyInstaller one-folder app, a check that it
# runs, then dist\mailer-gui-VERSION-setup.exe with Inno Setup 6.
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build-windows.ps1
#
# Needs: 64-bit Python 3.11+ on PATH as "python", and Inno Setup 6 (ISCC.exe on
# PATH or in its default folder; winget install JRSoftware.InnoSetup).
# The version comes from mailer_gui\__init__.py.
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")

function Invoke-Checked {
    param([string]$Program, [string[]]$Arguments)
    & $Program @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "$Program $($Arguments -join ' ') failed with exit code $LASTEXITCODE"
    }
}

$match = Select-String -Path "mailer_gui\__init__.py" -Pattern '^__version__ = "(.+)"$'
if (-not $match) { throw "no __version__ line in mailer_gui\__init__.py" }
$version = $match.Matches[0].Groups[1].Value
Write-Host "--- Mailer $version"

Invoke-Checked python @("-m", "pip", "install", "-e", ".[build]")
Invoke-Checked python @(
    "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
    "--distpath", "build\pyinstaller\dist", "--workpath", "build\pyinstaller\work",
    "packaging\pyinstaller\mailer-gui.spec"
)

# The console twin prints what the windowed mailer-gui.exe cannot.
$cli = "build\pyinstaller\dist\mailer-gui\mailer-gui-cli.exe"
Invoke-Checked $cli @("--version")
$env:QT_QPA_PLATFORM = "offscreen"
Invoke-Checked $cli @("--self-test")
Remove-Item Env:QT_QPA_PLATFORM

$iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $iscc) {
    $iscc = Join-Path ${env:ProgramFiles(x86)} "Inno Setup 6\ISCC.exe"
}
if (-not (Test-Path $iscc)) { throw "Inno Setup 6 (ISCC.exe) was not found" }
Invoke-Checked $iscc @("/Qp", "/DAppVersion=$version", "packaging\windows\mailer-gui.iss")

$setup = Get-Item "dist\mailer-gui-$version-setup.exe"
$folder = (Get-ChildItem "build\pyinstaller\dist\mailer-gui" -Recurse -File | Measure-Object -Property Length -Sum).Sum
Write-Host ("installed size: {0:N1} MiB" -f ($folder / 1MB))
Write-Host ("{0}: {1:N1} MiB" -f $setup.Name, ($setup.Length / 1MB))
