// Lets plugins in any folder (PLUGINS_DIRS) import the SDK as 'switchboard/sdk', even where no
// node_modules/switchboard can be found from them: the specifier always means this installation's SDK.
const SDK = new URL('../src/plugins/sdk.ts', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'switchboard/sdk') return { url: SDK, shortCircuit: true };
  return nextResolve(specifier, context);
}
